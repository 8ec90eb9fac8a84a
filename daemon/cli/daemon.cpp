// The daemon: one loop over sources, the pipeline, the Redis target, signals and timers.
#include "pgbust/cli/daemon.hpp"

#include <spdlog/spdlog.h>

#include <fmt/format.h>
#include <malloc.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <thread>

#include "pgbust/cli/build_sources.hpp"
#include "pgbust/cli/redis_options.hpp"
#include "pgbust/core/error.hpp"
#include "pgbust/core/log_fields.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/core/source.hpp"
#include "pgbust/ops/signals.hpp"
#include "pgbust/ops/status_line.hpp"
#include "pgbust/ops/telemetry.hpp"
#include "pgbust/pipeline/fan_out.hpp"
#include "pgbust/pipeline/pipeline.hpp"
#include "pgbust/redis/cluster.hpp"
#include "pgbust/redis/dry_run.hpp"
#include "pgbust/redis/redis.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust::cli {

namespace {

// Loading rules builds the YAML document (most of the memory, about 9 KB a rule) and frees
// it again; give those pages back to the system rather than keep them for the process's life.
void release_freed_memory() {
  ::malloc_trim(0);
}

// Rule errors at start are configuration errors: the process exits 78 and is not restarted.
std::shared_ptr<const rules::RuleSet> load_rules(const std::filesystem::path& path) {
  auto result = rules::RuleSet::load(path);
  release_freed_memory();
  if (!result.errors.empty()) {
    std::vector<std::string> problems;
    for (const auto& d : result.errors) problems.push_back(d.str());
    throw config::ConfigError(std::move(problems));
  }
  return result.rules;
}

// Runs a constructor that only validates its options (no connection is made yet): what it
// refuses (a bad Redis URL, an invalid slot name) is a configuration error.
template <typename F>
auto validating(F&& make) -> decltype(make()) {
  try {
    return make();
  } catch (const ConnectionError&) {
    throw;
  } catch (const config::ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw config::ConfigError({e.what()});
  }
}

std::string describe_rules(const rules::RuleSet& r) {
  return std::to_string(r.rules().size()) + " (" + r.hash() + ")";
}

// One Target per configured Redis (validated as `check --config` does).
std::vector<std::unique_ptr<redis::AnyTarget>> make_targets(const config::Config& c) {
  std::vector<std::unique_ptr<redis::AnyTarget>> targets;
  if (c.dry_run) {  // one stand-in for every target: counts and traces, never writes Redis
    targets.push_back(std::make_unique<redis::DryRunTarget>(c.dry_run_trace));
    return targets;
  }
  for (const auto& r : config::redis_targets(c))
    targets.push_back(validating([&] { return redis::make_target(redis_options(r)); }));
  return targets;
}

// Key prefixes: when every target has the same one the rules apply it (as with one target);
// otherwise each target's FanOut member puts its own in front.
bool one_prefix(const config::Config& c) {
  if (c.dry_run) return true;  // one DryRunTarget stands in for all: it shows the first prefix
  for (const auto& r : c.more_redis)
    if (r.key_prefix != c.redis.key_prefix) return false;
  return true;
}

std::unique_ptr<FanOut> make_fan_out(
    const config::Config& c, const std::vector<std::unique_ptr<redis::AnyTarget>>& targets) {
  if (targets.size() < 2) return nullptr;
  const auto all = config::redis_targets(c);
  const bool shared = one_prefix(c);  // the rules apply it; the members add none
  std::vector<FanOut::Member> members;
  for (std::size_t i = 0; i < targets.size(); ++i)
    members.push_back({targets[i].get(), shared ? "" : all[i].key_prefix});
  return std::make_unique<FanOut>(std::move(members));
}

PipelineOptions pipeline_options(const config::Config& c) {
  PipelineOptions o;
  o.max_keys_per_transaction = c.limits.max_keys_per_transaction;
  o.max_batch_keys = c.limits.max_batch_keys;
  o.max_queued_batches = c.limits.max_queued_batches;
  o.track_origins = c.dry_run;  // pgbust_dry_run_commands_total{rule,command}
  return o;
}

// Loads a rules file on a worker thread, so that reloading a big one (seconds for tens of
// thousands of rules) does not stop the loop: keepalives, Redis and /healthz go on. An eventfd
// tells the loop the result is there; `done` then runs on the loop thread. One load at a time.
class RulesLoader : public Pollable {
 public:
  using Done = std::function<void(rules::LoadResult)>;
  explicit RulesLoader(Done done)
      : done_(std::move(done)), efd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (efd_ < 0) throw Error(std::string("eventfd for loading rules: ") + std::strerror(errno));
  }
  ~RulesLoader() override {
    if (worker_.joinable()) worker_.join();
    ::close(efd_);
  }
  RulesLoader(const RulesLoader&) = delete;
  RulesLoader& operator=(const RulesLoader&) = delete;

  bool busy() const { return worker_.joinable(); }

  void start(std::filesystem::path path) {
    worker_ = std::thread([this, path = std::move(path)] {
      rules::LoadResult r;
      try {
        r = rules::RuleSet::load(path);
      } catch (const std::exception& e) {  // out of memory, most likely
        r = rules::LoadResult{};
        r.errors.push_back({path.string(), 0, 0, std::string("cannot load: ") + e.what()});
      }
      release_freed_memory();
      result_ = std::move(r);  // read by the loop thread after join()
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(efd_, &one, sizeof one);
    });
  }

  int fd() const override { return efd_; }
  short events() const override { return POLLIN; }
  void on_ready(short) override {
    std::uint64_t n = 0;
    if (::read(efd_, &n, sizeof n) != static_cast<ssize_t>(sizeof n) || !worker_.joinable()) return;
    worker_.join();
    rules::LoadResult r = std::move(result_);
    result_ = {};
    done_(std::move(r));
  }
  TimePoint deadline() const override { return kNever; }
  void on_timer(TimePoint) override {}

 private:
  Done done_;
  int efd_;
  std::thread worker_;
  rules::LoadResult result_;
};

}  // namespace

struct Daemon::Impl : Pollable {
  config::Config cfg;
  std::shared_ptr<const rules::RuleSet> rules;
  std::vector<std::unique_ptr<redis::AnyTarget>> targets;
  std::unique_ptr<FanOut> fan_out;  // with several targets: the pipeline's applier
  Pipeline pipeline;
  std::vector<std::unique_ptr<Source>> sources;
  Loop loop;
  std::unique_ptr<Signals> signals;
  std::unique_ptr<Telemetry> telemetry;
  RulesLoader rules_loader{[this](rules::LoadResult r) { rules_loaded(std::move(r)); }};
  bool reload_again = false;  // a SIGHUP arrived while the rules were loading
  std::map<Unknown, std::uint64_t> widenings_at_last_status;
  std::map<std::string, bool> wal_warned;

  enum class Phase { Running, Draining, Done } phase = Phase::Running;
  int exit_code = 0;
  TimePoint drain_deadline = kNever;
  TimePoint next_status = kNever;
  std::vector<TimePoint> redis_down_since;  // per target
  std::uint64_t changes_at_last_status = 0;
  TimePoint last_status = Clock::now();
  const TimePoint started = Clock::now();
  std::map<std::string, SourceState> last_states;
  std::vector<redis::State> last_redis;  // per target

  Impl(config::Config c)
      : cfg(std::move(c)),
        rules(load_rules(cfg.rules)),
        targets(make_targets(cfg)),
        fan_out(make_fan_out(cfg, targets)),
        pipeline(rules, rules::EngineOptions{one_prefix(cfg) ? cfg.redis.key_prefix : ""},
                 fan_out ? static_cast<Applier&>(*fan_out) : *targets.front(),
                 pipeline_options(cfg)),
        redis_down_since(targets.size(), kNever),
        last_redis(targets.size(), redis::State::Disconnected) {
    sources = validating([this] { return make_sources(cfg, *rules, pipeline); });
    if (sources.empty())
      throw config::ConfigError({"no source configured: set sources.logical, notify or poll"});
    std::vector<redis::AnyTarget*> all;
    for (auto& t : targets) all.push_back(t.get());
    telemetry = std::make_unique<Telemetry>(cfg.status, pipeline, std::move(all), sources,
                                            [this] { return status_input(); });
    pipeline.on_latency = [this](double seconds) { telemetry->observe_latency(seconds); };
  }

  StatusInput status_input() {
    StatusInput in;
    for (const auto& s : sources) in.sources.emplace_back(s->name(), s->status());
    in.pipeline = &pipeline.stats();
    auto now = Clock::now();
    for (std::size_t i = 0; i < targets.size(); ++i) {
      const redis::AnyTarget& t = *targets[i];
      RedisStatus r{t.name(), t.state(), t.describe(),   0, &t.stats(), t.last_error(),
                    t.role(), t.tls(),   t.tls_version()};
      if (redis_down_since[i] != kNever)
        r.down_seconds = std::chrono::duration<double>(now - redis_down_since[i]).count();
      in.redis.push_back(std::move(r));
    }
    double secs = std::chrono::duration<double>(now - last_status).count();
    if (secs > 0)
      in.changes_per_second = (pipeline.stats().changes - changes_at_last_status) / secs;
    in.in_flight = pipeline.in_flight();
    in.wal_warn_bytes = cfg.status.wal_warn_bytes;
    in.rules = describe_rules(pipeline.rules());
    in.stopping = phase != Phase::Running;
    in.uptime_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    return in;
  }

  // State-change lines: a source or Redis changing state is logged when it happens.
  void watch_states() {
    bool changed = false, all_streaming = true;
    for (const auto& s : sources) {
      auto st = s->status();
      auto it = last_states.find(s->name());
      if (it == last_states.end() || it->second != st.state) {
        std::string name = s->name();
        LogScope scope(LogFields::of_source(name));
        if (st.state == SourceState::BackingOff && !st.last_error.empty())
          spdlog::warn("{}: {} ({})", s->name(), to_string(st.state), st.last_error);
        else if (st.state == SourceState::Standby)
          spdlog::info("{}: standby ({})", s->name(), st.standby);
        else
          spdlog::info("{}: {}{}", s->name(), to_string(st.state),
                       st.position.empty() ? "" : " at " + st.position);
        last_states[s->name()] = st.state;
        changed = true;
      }
      // A standby source is started too: READY=1 lets systemd finish starting it.
      if (st.state != SourceState::Streaming && st.state != SourceState::Standby)
        all_streaming = false;
      watch_wal(s->name(), st);
    }
    bool all_ready = true;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      auto rs = targets[i]->state();
      if (rs != redis::State::Ready) all_ready = false;
      if (rs == last_redis[i]) continue;
      if (rs == redis::State::Ready) {
        redis_down_since[i] = kNever;
      } else if (last_redis[i] == redis::State::Ready || redis_down_since[i] == kNever) {
        redis_down_since[i] = Clock::now();
      }
      last_redis[i] = rs;
      changed = true;
    }
    if (changed) telemetry->status(status_line(status_input()));
    // READY=1 once every source streams and every Redis answers: systemd's "started".
    if (all_streaming && all_ready && !telemetry->announced_ready() && phase == Phase::Running) {
      telemetry->ready();
      spdlog::info("ready: every source is streaming (or standby) and Redis is reachable");
    }
  }

  // WAL safety: a slot holding more WAL than status.wal_warn_bytes is logged (and /healthz
  // degrades) before the database's disk is at risk.
  void watch_wal(const std::string& name, const SourceStatus& st) {
    std::int64_t limit = cfg.status.wal_warn_bytes;
    if (limit <= 0 || st.lag_bytes < 0) return;
    bool over = st.lag_bytes > limit;
    bool& warned = wal_warned[name];
    if (over && !warned)
      spdlog::warn(
          "{}: the slot holds {} of WAL, more than status.wal_warn_bytes ({}); "
          "PostgreSQL keeps it until pgbust confirms — is Redis down or pgbust behind?",
          name, human_bytes(st.lag_bytes), human_bytes(limit));
    else if (!over && warned)
      spdlog::info("{}: WAL held by the slot is back under {} ({})", name, human_bytes(limit),
                   human_bytes(st.lag_bytes));
    warned = over;
  }

  void log_status() {
    auto in = status_input();
    std::string line = status_line(in);
    spdlog::info("status: {}", line);
    telemetry->status(line);
    // A burst of widenings gets its own line naming the reasons.
    std::string burst;
    for (const auto& [reason, n] : pipeline.stats().widenings_by_reason) {
      auto& before = widenings_at_last_status[reason];
      if (n > before)
        burst += fmt::format("{}{} × {}", burst.empty() ? "" : ", ", n - before, to_string(reason));
      before = n;
    }
    if (!burst.empty()) spdlog::warn("widened since the last status line: {}", burst);
    changes_at_last_status = pipeline.stats().changes;
    last_status = Clock::now();
  }

  void on_signal(int sig) {
    if (sig == SIGHUP) {
      reload();
      return;
    }
    if (phase == Phase::Draining) {
      spdlog::warn("second {}: exiting now; unconfirmed work will be replayed on restart",
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
      exit_code = 1;
      phase = Phase::Done;
      return;
    }
    spdlog::info("{}: finishing in-flight work, then exiting",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
    phase = Phase::Draining;
    telemetry->stopping();
    drain_deadline = Clock::now() + std::chrono::seconds(30);
    for (auto& s : sources) s->stop_reading();
  }

  // SIGHUP: the rules, log.level and status.interval change in place; anything else in the
  // config file is reported as needing a restart. A bad file keeps everything as it was.
  // The rules load on a worker thread (rules_loaded() takes them); a SIGHUP meanwhile is
  // served once that load is done, so the newest files win.
  void reload() {
    if (rules_loader.busy()) {
      spdlog::info("SIGHUP: the rules are still loading; reloading again once they are in");
      reload_again = true;
      return;
    }
    spdlog::info("SIGHUP: reloading");
    telemetry->reloading();
    // Not a config change: a rotated Redis password file is read now and used from the next
    // connection (an unreadable one is logged and the last good password kept).
    for (auto& t : targets) t->reread_password();
    if (!reload_config()) return reload_done(false);
    rules_loader.start(cfg.rules);
  }

  void rules_loaded(rules::LoadResult result) { reload_done(apply_rules(std::move(result))); }

  void reload_done(bool ok) {
    telemetry->count_reload(ok);
    telemetry->ready();
    if (reload_again) {
      reload_again = false;
      reload();
    }
  }

  bool reload_config() {
    if (cfg.file.empty()) return true;
    config::Config next;
    try {
      next = config::load(cfg.file);
    } catch (const config::ConfigError& e) {
      for (const auto& p : e.problems()) spdlog::error("{}", p);
      spdlog::error("reload failed: {} is invalid; keeping the running configuration and rules",
                    cfg.file.string());
      return false;
    }
    if (next.log_level != cfg.log_level) {
      spdlog::set_level(spdlog::level::from_str(next.log_level));
      spdlog::info("log level: {} -> {}", cfg.log_level, next.log_level);
      cfg.log_level = next.log_level;
    }
    if (next.status.interval != cfg.status.interval) {
      cfg.status.interval = next.status.interval;
      next_status = Clock::now() + cfg.status.interval;
    }
    if (next.rules != cfg.rules) {
      spdlog::info("rules path: {} -> {}", cfg.rules.string(), next.rules.string());
      cfg.rules = next.rules;
    }
    std::vector<std::string> restart;
    if (next.conninfo != cfg.conninfo) restart.push_back("postgres");
    if (config::redis_targets(next) != config::redis_targets(cfg)) restart.push_back("redis");
    if (next.logical.has_value() != cfg.logical.has_value() ||
        next.notify.has_value() != cfg.notify.has_value() ||
        next.poll.has_value() != cfg.poll.has_value())
      restart.push_back("sources");
    if (next.status.listen != cfg.status.listen) restart.push_back("status.listen");
    for (const auto& what : restart)
      spdlog::warn("reload: {} changed in {}; that takes effect after a restart", what,
                   cfg.file.string());
    return true;
  }

  bool apply_rules(rules::LoadResult result) {
    if (!result.errors.empty()) {
      for (const auto& d : result.errors) spdlog::error("{}", d.str());
      spdlog::error("reload failed: {} error(s) in {}; keeping the active rules {}",
                    result.errors.size(), cfg.rules.string(), describe_rules(pipeline.rules()));
      return false;
    }
    rules = result.rules;  // the previous set is freed once the pipeline lets go of it too
    pipeline.replace_rules(result.rules);
    for (auto& s : sources) s->rules_changed(*result.rules);
    spdlog::info("rules reloaded: {} rules on {} tables (hash {})", result.rules->rules().size(),
                 result.rules->tables().size(), result.rules->hash());
    return true;
  }

  // Pollable: the daemon's own timers (status line, drain).
  int fd() const override { return -1; }
  short events() const override { return 0; }
  void on_ready(short) override {}
  TimePoint deadline() const override { return std::min(next_status, drain_deadline); }
  void on_timer(TimePoint now) override {
    if (now >= next_status) {
      log_status();
      next_status = now + cfg.status.interval;
    }
    if (phase == Phase::Draining && now >= drain_deadline) {
      spdlog::error(
          "drain timed out after 30s with {} transaction(s) unconfirmed; they will be "
          "replayed on restart",
          pipeline.in_flight());
      exit_code = 1;
      phase = Phase::Done;
    }
  }

  int run() {
    signals = std::make_unique<Signals>([this](int sig) { on_signal(sig); });
    loop.add(signals.get());
    for (auto& t : targets) t->attach(loop);
    loop.add(&pipeline);
    for (auto& s : sources) {
      loop.add(s.get());
      if (Pollable* side = s->side()) loop.add(side);
    }
    loop.add(this);
    loop.add(&rules_loader);
    telemetry->attach(loop);
    std::string redis;
    for (const auto& t : targets)
      redis += (redis.empty() ? "" : ", ") +
               (targets.size() > 1 ? t->name() + " " + t->describe() : t->describe());
    spdlog::info("pgbust starting: rules {} from {}, redis {}{}", describe_rules(*rules),
                 cfg.rules.string(), redis,
                 telemetry->address().empty() ? "" : ", metrics on http://" + telemetry->address());
    next_status = Clock::now() + cfg.status.interval;
    while (phase != Phase::Done) {
      loop.run_once(std::chrono::milliseconds(1000));
      watch_states();
      if (phase == Phase::Draining && pipeline.idle()) {
        spdlog::info("drained: every committed change is applied and confirmed");
        phase = Phase::Done;
      }
    }
    for (auto& s : sources) s->close();
    for (auto& t : targets) t->close();
    log_status();
    telemetry->detach(loop);
    return exit_code;
  }
};

Daemon::Daemon(config::Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Daemon::~Daemon() = default;
int Daemon::run() {
  return impl_->run();
}

}  // namespace pgbust::cli
