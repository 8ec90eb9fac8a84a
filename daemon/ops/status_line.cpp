// The status line: one sentence an operator can read to know whether caches are fresh.
#include "pgbust/ops/status_line.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace pgbust {

std::string_view to_string(Health h) {
  switch (h) {
    case Health::Starting:
      return "starting";
    case Health::Healthy:
      return "healthy";
    case Health::CatchingUp:
      return "catching up";
    case Health::Degraded:
      return "degraded";
    case Health::Stopping:
      return "stopping";
    case Health::Standby:
      return "standby";
  }
  return "?";
}

std::string_view to_string(SourceState state) {
  switch (state) {
    case SourceState::Connecting:
      return "connecting";
    case SourceState::Starting:
      return "starting";
    case SourceState::Streaming:
      return "streaming";
    case SourceState::BackingOff:
      return "backing off";
    case SourceState::Stopped:
      return "stopped";
    case SourceState::Standby:
      return "standby";
  }
  return "?";
}

std::string human_bytes(std::int64_t bytes) {
  if (bytes < 0) return "?";
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

Health health(const StatusInput& in) {
  if (in.stopping) return Health::Stopping;
  // A standby source is as it should be (another instance is active for it): only the
  // sources this instance is active for, and Redis, decide the rest.
  bool all_streaming = !in.sources.empty();
  bool all_standby = !in.sources.empty();
  bool any_started = false;
  bool lagging = false;
  bool failed = false;
  for (const auto& [name, s] : in.sources) {
    if (s.errors > 0) failed = true;
    if (s.state != SourceState::Standby) all_standby = false;
    if (s.state == SourceState::Standby) continue;
    if (s.state != SourceState::Streaming) all_streaming = false;
    if (s.state == SourceState::Streaming) any_started = true;
    if (in.wal_warn_bytes > 0 && s.lag_bytes > in.wal_warn_bytes) return Health::Degraded;
    if (s.lag_seconds > 10) lagging = true;
    if (!s.degraded.empty()) return Health::Degraded;
  }
  // Reachable but refusing a batch (OOM, NOPERM, ...) is not fine either: caches go stale.
  bool redis_ok = !in.redis.empty();
  double redis_down = 0;
  for (const RedisStatus& r : in.redis) {
    redis_ok = redis_ok && r.state == redis::State::Ready &&
               (r.stats == nullptr || r.stats->failing_batches == 0);
    redis_down = std::max(redis_down, r.down_seconds);
  }
  if (all_standby && redis_ok) return Health::Standby;
  if (!any_started && in.pipeline && in.pipeline->transactions == 0 && redis_down < 5 && !failed &&
      in.uptime_seconds < kStartupGraceSeconds)
    return Health::Starting;
  if (!all_streaming || !redis_ok) return Health::Degraded;
  if (lagging) return Health::CatchingUp;
  return Health::Healthy;
}

bool health_ok(Health h) {
  return h == Health::Healthy || h == Health::CatchingUp || h == Health::Standby;
}

std::string status_line(const StatusInput& in) {
  std::string out(to_string(health(in)));
  out += ":";
  for (const auto& [name, s] : in.sources) {
    out += fmt::format(" {} {}", name, to_string(s.state));
    if (s.state == SourceState::Standby) {  // the active instance reports position and lag
      out += " (" + s.standby + ");";
      continue;
    }
    if (!s.position.empty()) out += " at " + s.position;
    if (s.lag_bytes >= 0) out += " lag " + human_bytes(s.lag_bytes);
    if (s.lag_seconds >= 0) out += fmt::format(" {:.1f}s", s.lag_seconds);
    if (s.state != SourceState::Streaming && !s.last_error.empty())
      out += " (" + s.last_error + ")";
    else if (!s.degraded.empty())
      out += " (" + s.degraded + ")";
    out += ";";
  }
  for (const RedisStatus& r : in.redis) {
    out += " redis";
    if (in.redis.size() > 1) out += " " + r.name;
    out += fmt::format(" {}", redis::to_string(r.state));
    if (!r.server.empty()) out += " " + r.server;
    if (!r.role.empty() || !r.tls_version.empty())
      out += fmt::format(" [{}{}{}]", r.role, r.role.empty() ? "" : ", ",
                         r.tls ? (r.tls_version.empty() ? "TLS" : r.tls_version) : "no TLS");
    if (r.state != redis::State::Ready && r.down_seconds > 0)
      out += fmt::format(" (down {:.0f}s)", r.down_seconds);
    if (r.stats && r.stats->failing_batches > 0)
      out += fmt::format(" ({} batch{} failing: {})", r.stats->failing_batches,
                         r.stats->failing_batches == 1 ? "" : "es", r.error);
    if (r.stats && r.stats->pass_running) {
      const auto& st = *r.stats;
      out += fmt::format(" (keyspace pass for {} pattern{}: {} keys scanned", st.pass_patterns,
                         st.pass_patterns == 1 ? "" : "s", st.pass_scanned);
      if (st.pass_dbsize > 0)
        out += fmt::format(" of {} ({:.0f}%)", st.pass_dbsize,
                           std::min(100.0, 100.0 * static_cast<double>(st.pass_scanned) /
                                               static_cast<double>(st.pass_dbsize)));
      out += ")";
    }
    out += ";";
  }
  out += fmt::format(" {:.1f} changes/s;", in.changes_per_second);
  if (const auto* p = in.pipeline) {
    out += fmt::format(" {} changes {} txns; keys {} patterns {} bumps {} publishes {};",
                       p->changes, p->transactions, p->keys, p->patterns, p->bumps, p->publishes);
    out += fmt::format(" widened {};", p->widenings);
  }
  std::uint64_t errors = 0;
  for (const RedisStatus& r : in.redis) errors += r.stats ? r.stats->errors : 0;
  for (const auto& [name, s] : in.sources) errors += s.errors;
  out += fmt::format(" errors {}; in flight {}", errors, in.in_flight);
  if (!in.rules.empty()) out += "; rules " + in.rules;
  return out;
}

}  // namespace pgbust
