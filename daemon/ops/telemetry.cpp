// Metrics (refreshed from the components' counters at scrape time), /healthz, /status, and
// systemd notifications.
#include "pgbust/ops/telemetry.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "pgbust/core/version.hpp"
#include "pgbust/ops/process_metrics.hpp"
#include "pgbust/redis/dry_run.hpp"

namespace pgbust {

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

constexpr const char* kRedisErrorsHelp =
    "Redis error replies by class and command, and failed connections (class=\"connection\")";
}  // namespace

Telemetry::Telemetry(const config::Status& cfg, Pipeline& pipeline,
                     std::vector<redis::AnyTarget*> targets,
                     const std::vector<std::unique_ptr<Source>>& sources,
                     std::function<StatusInput()> status)
    : pipeline_(pipeline),
      targets_(std::move(targets)),
      sources_(sources),
      status_(std::move(status)),
      watchdog_(notifier_) {
  latency_ = &registry_.histogram("pgbust_commit_to_redis_seconds",
                                  "Time from a transaction's commit to its invalidations being "
                                  "applied in Redis",
                                  metrics::latency_buckets());
  // Keyspace passes take from milliseconds (a small keyspace) to minutes (millions of keys).
  for (redis::AnyTarget* t : targets_) {
    auto* passes = &registry_.histogram(
        "pgbust_redis_pass_duration_seconds",
        "Duration of keyspace passes (one SCAN stream serving every pending pattern delete), "
        "by target",
        {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800}, {{"target", t->name()}});
    t->on_pass([passes](double seconds) { passes->observe(seconds); });
  }
  reloads_ok_ = &registry_.counter("pgbust_reloads_total", "Rule reloads (SIGHUP) by result",
                                   {{"result", "ok"}});
  reloads_failed_ = &registry_.counter("pgbust_reloads_total", "Rule reloads (SIGHUP) by result",
                                       {{"result", "failed"}});
  // The config and rules were just loaded: that counts as the first successful load.
  reload_successful_ =
      &registry_.gauge("pgbust_config_last_reload_successful",
                       "1 when the last configuration and rules load (start or SIGHUP) succeeded");
  reload_success_time_ = &registry_.gauge(
      "pgbust_config_last_reload_success_timestamp_seconds",
      "When the configuration and rules were last loaded successfully, since the Unix epoch");
  reload_successful_->set(1);
  reload_success_time_->set(unix_now());
  registry_
      .gauge("pgbust_build_info", "The running build: version and source revision (always 1)",
             {{"version", std::string(version())}, {"revision", std::string(revision())}})
      .set(1);
  register_process_metrics(registry_);
  registry_.on_render([this] { refresh(); });
  if (!cfg.listen.empty()) {
    http::Options o;
    o.listen = cfg.listen;
    server_ = std::make_unique<http::Server>(o);
    server_->handle("/metrics", [this](const http::Request&) {
      http::Response r;
      r.content_type = std::string(metrics::kContentType);
      r.body = registry_.render();
      return r;
    });
    auto health = [this](const http::Request&) {
      auto in = status_();
      http::Response r;
      Health h = pgbust::health(in);
      r.status = health_ok(h) ? 200 : 503;
      r.body = status_line(in) + "\n";
      return r;
    };
    server_->handle("/healthz", health);
    server_->handle("/status", health);
  }
}

Telemetry::~Telemetry() = default;

std::string Telemetry::address() const {
  return server_ ? server_->address() : "";
}

void Telemetry::attach(Loop& loop) {
  if (server_) loop.add(server_.get());
  loop.add(&watchdog_);
}

void Telemetry::detach(Loop& loop) {
  if (server_) loop.remove(server_.get());
  loop.remove(&watchdog_);
}

void Telemetry::count_reload(bool ok) {
  (ok ? reloads_ok_ : reloads_failed_)->inc();
  reload_successful_->set(ok ? 1 : 0);
  if (ok) reload_success_time_->set(unix_now());
}

void Telemetry::ready() {
  notifier_.ready();
  ready_sent_ = true;
}

void Telemetry::refresh() {
  auto& r = registry_;
  const auto& p = pipeline_.stats();
  set(r.counter("pgbust_transactions_total", "Committed transactions received"), p.transactions);
  set(r.counter("pgbust_transactions_applied_total",
                "Transactions whose invalidations are applied and confirmed to their source"),
      p.applied_transactions);
  for (const auto& [table, ts] : pipeline_.table_stats()) {
    static const char* ops[] = {"insert", "update", "delete", "truncate"};
    for (int i = 0; i < 4; ++i)
      if (ts.ops[i] > 0)
        set(r.counter("pgbust_changes_total", "Row changes received, by table and operation",
                      {{"table", ts.table}, {"op", ops[i]}}),
            ts.ops[i]);
  }
  for (const auto& [rule, rs] : pipeline_.rule_stats()) {
    metrics::Labels l{{"rule", rule}};
    set(r.counter("pgbust_keys_deleted_total", "Exact keys sent to UNLINK, by rule", l), rs.keys);
    set(r.counter("pgbust_patterns_total", "Pattern deletes (SCAN + UNLINK), by rule", l),
        rs.patterns);
    set(r.counter("pgbust_bumps_total", "Revision counter bumps, by rule", l), rs.bumps);
    set(r.counter("pgbust_publishes_total", "Invalidation messages published, by rule", l),
        rs.publishes);
    set(r.counter("pgbust_rule_widenings_total", "Widenings, by rule", l), rs.widenings);
  }
  set(r.counter("pgbust_emitted_messages_total",
                "Application messages (pg_logical_emit_message, prefix pgbust) taken into "
                "their transaction's invalidations"),
      p.emitted_messages);
  for (const auto& [reason, n] : p.emitted_rejected)
    set(r.counter("pgbust_emitted_messages_rejected_total",
                  "Application messages ignored (malformed, non-transactional), by reason",
                  {{"reason", reason}}),
        n);
  for (const auto& [reason, n] : p.widenings_by_reason)
    set(r.counter("pgbust_widenings_total",
                  "Keys that could not be computed exactly and were widened, by reason",
                  {{"reason", std::string(label(reason))}}),
        n);
  for (const redis::AnyTarget* t : targets_) {
    refresh_target(*t);
    if (const auto* dry = dynamic_cast<const redis::DryRunTarget*>(t))
      for (const auto& [rule_command, n] : dry->rule_commands())
        set(r.counter("pgbust_dry_run_commands_total",
                      "Redis commands a dry run would have sent, by rule and command (a key "
                      "several rules named counts once, for the first; \"(application)\": "
                      "the application's own messages)",
                      {{"rule", rule_command.first}, {"command", rule_command.second}}),
            n);
  }
  r.gauge("pgbust_in_flight_transactions", "Committed transactions not yet confirmed")
      .set(static_cast<double>(pipeline_.in_flight()));
  r.gauge("pgbust_ack_records",
          "Acknowledgement records holding the in-flight transactions (bounded by the batches "
          "not yet applied)")
      .set(static_cast<double>(pipeline_.ack_records()));
  for (const auto& s : sources_) {
    auto st = s->status();
    metrics::Labels l{{"source", s->name()}};
    r.gauge("pgbust_source_up", "1 when the source is streaming", l)
        .set(st.state == SourceState::Streaming ? 1 : 0);
    r.gauge("pgbust_active",
            "0 when the source is standby (another instance holds its replication slot or "
            "advisory lock), 1 when this instance is, or is trying to be, the active one",
            l)
        .set(active(st) ? 1 : 0);
    set(r.counter("pgbust_reconnects_total", "Reconnections, by upstream",
                  {{"upstream", s->name()}}),
        st.reconnects);
    set(r.counter("pgbust_source_errors_total", "Errors, by source", l), st.errors);
    if (st.uncovered_tables >= 0)
      r.gauge("pgbust_publication_uncovered_tables",
              "Rule tables of the logical source its publication does not cover (the verdict "
              "is degraded while any is)",
              l)
          .set(static_cast<double>(st.uncovered_tables));
    for (const auto& [reason, n] : st.rejected)
      set(r.counter("pgbust_" + s->name() + "_rejected_total",
                    "Payloads refused (unsigned, forged, signed with an unknown key), by reason",
                    {{"reason", reason}}),
          n);
    if (st.lag_bytes >= 0)
      r.gauge("pgbust_replication_lag_bytes",
              "WAL the slot holds back: server WAL end minus the confirmed position", l)
          .set(static_cast<double>(st.lag_bytes));
    if (st.lag_seconds >= 0)
      r.gauge("pgbust_replication_lag_seconds",
              "Age of the oldest committed change not yet applied in Redis", l)
          .set(st.lag_seconds);
  }
}

// One Redis target's series, each labelled target="<name>".
void Telemetry::refresh_target(const redis::AnyTarget& t) {
  auto& r = registry_;
  const auto& rs = t.stats();
  const std::string& name = t.name();
  set(r.counter("pgbust_redis_commands_total", "Redis commands answered, by target",
                {{"target", name}}),
      rs.commands);
  // Error replies by class (transient, persistent) and command; failed connections as
  // class="connection".
  std::uint64_t replies = 0;
  for (const auto& [key, n] : rs.errors_by_class) {
    set(r.counter("pgbust_redis_errors_total", kRedisErrorsHelp,
                  {{"target", name}, {"class", key.first}, {"command", key.second}}),
        n);
    replies += n;
  }
  set(r.counter("pgbust_redis_errors_total", kRedisErrorsHelp,
                {{"target", name}, {"class", "connection"}}),
      rs.errors - std::min(rs.errors, replies));
  set(r.counter("pgbust_redis_keys_unlinked_total", "Keys Redis reported removed by UNLINK",
                {{"target", name}}),
      rs.keys_deleted);
  set(r.counter("pgbust_redis_stream_entries_total", "Stream entries added (XADD), by target",
                {{"target", name}}),
      rs.stream_entries);
  set(r.counter("pgbust_redis_keyspace_passes_total",
                "Keyspace passes completed (each serves every pattern pending when it starts), "
                "by target",
                {{"target", name}}),
      rs.passes);
  set(r.counter("pgbust_redis_pass_keys_scanned_total",
                "Keys keyspace passes scanned (visited by SCAN; estimated as COUNT per call when "
                "the patterns share a prefix and SCAN MATCHes it), by target",
                {{"target", name}}),
      rs.pass_keys_scanned);
  set(r.counter("pgbust_redis_pass_keys_deleted_total",
                "Keys Redis reported removed by keyspace passes' UNLINKs, by target",
                {{"target", name}}),
      rs.pass_keys_deleted);
  r.gauge("pgbust_redis_pass_running", "1 while a keyspace pass is running, by target",
          {{"target", name}})
      .set(rs.pass_running ? 1 : 0);
  r.gauge("pgbust_redis_scan_count", "SCAN COUNT now (adapts to keep each SCAN short), by target",
          {{"target", name}})
      .set(static_cast<double>(rs.scan_count));
  set(r.counter("pgbust_reconnects_total", "Reconnections, by upstream",
                {{"upstream", "redis"}, {"target", name}}),
      rs.reconnects);
  set(r.counter("pgbust_redis_failovers_total",
                "Master changes followed (Redis Sentinel), by target", {{"target", name}}),
      rs.failovers);
  r.gauge("pgbust_redis_up", "1 when the Redis connection is ready", {{"target", name}})
      .set(t.connected() ? 1 : 0);
  r.gauge("pgbust_redis_queued_batches", "Batches handed to the target and not yet applied",
          {{"target", name}})
      .set(static_cast<double>(t.queued()));
  // The last handshake's view: role (ROLE) and TLS (protocol negotiated, or "none").
  const std::string role = t.role().empty() ? "unknown" : t.role();
  const std::string tls = !t.tls() ? "none" : t.tls_version().empty() ? "pending" : t.tls_version();
  auto& info = r.gauge("pgbust_redis_info",
                       "A Redis target's role and TLS protocol as last seen (1 for the current "
                       "pair, 0 for earlier ones)",
                       {{"target", name}, {"role", role}, {"tls", tls}});
  metrics::Gauge*& shown = redis_info_[name];  // the pair shown before: now 0
  if (shown != &info) {
    if (shown) shown->set(0);
    info.set(1);
    shown = &info;
  }
}

}  // namespace pgbust
