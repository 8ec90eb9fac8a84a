// The daemon's ops surface: Prometheus metrics and /healthz on the status address, and
// systemd notifications (READY, STATUS, WATCHDOG, RELOADING, STOPPING).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pgbust/core/config.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/core/source.hpp"
#include "pgbust/ops/http.hpp"
#include "pgbust/ops/metrics.hpp"
#include "pgbust/ops/sdnotify.hpp"
#include "pgbust/ops/status_line.hpp"
#include "pgbust/pipeline/pipeline.hpp"
#include "pgbust/redis/redis.hpp"

namespace pgbust {

class Telemetry {
 public:
  // Binds the metrics address (throws Error naming it when it cannot) unless listen is "".
  // `targets`: every Redis target, each labelled target="<its name>" in the metrics.
  Telemetry(const config::Status& cfg, Pipeline& pipeline, std::vector<redis::AnyTarget*> targets,
            const std::vector<std::unique_ptr<Source>>& sources,
            std::function<StatusInput()> status);
  ~Telemetry();

  void attach(Loop& loop);
  void detach(Loop& loop);

  // Observed commit → applied latency.
  void observe_latency(double seconds) { latency_->observe(seconds); }
  // A SIGHUP reload's result: pgbust_reloads_total and pgbust_config_last_reload_*.
  void count_reload(bool ok);

  // systemd
  void ready();  // once every source streams (and after a reload)
  void reloading() { notifier_.reloading(); }
  void stopping() { notifier_.stopping(); }
  void status(const std::string& line) { notifier_.status(line); }
  bool announced_ready() const { return ready_sent_; }

  std::string address() const;  // bound metrics address, "" when disabled

 private:
  void refresh();
  void refresh_target(const redis::AnyTarget& t);
  void set(metrics::Counter& c, std::uint64_t v) {
    if (v > c.value()) c.inc(v - c.value());
  }

  Pipeline& pipeline_;
  std::vector<redis::AnyTarget*> targets_;
  const std::vector<std::unique_ptr<Source>>& sources_;
  std::function<StatusInput()> status_;
  metrics::Registry registry_;
  std::unique_ptr<http::Server> server_;
  sdnotify::Notifier notifier_;
  sdnotify::WatchdogTimer watchdog_;
  metrics::Histogram* latency_;
  metrics::Counter* reloads_ok_;
  metrics::Counter* reloads_failed_;
  metrics::Gauge* reload_successful_;
  metrics::Gauge* reload_success_time_;
  std::map<std::string, metrics::Gauge*> redis_info_;  // by target: the series set to 1
  bool ready_sent_ = false;
};

}  // namespace pgbust
