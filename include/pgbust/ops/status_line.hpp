// The one-line status summary an operator reads (status log, systemd STATUS=, `pgbust
// status`), and the health verdict behind /healthz.
#pragma once

#include <string>
#include <vector>

#include "pgbust/core/source.hpp"
#include "pgbust/pipeline/pipeline.hpp"
#include "pgbust/redis/redis.hpp"

namespace pgbust {

// Standby: every source is standby (another instance holds its slot or lock) and Redis is
// reachable: healthy, waiting to take over (/healthz answers 200).
enum class Health { Starting, Healthy, CatchingUp, Degraded, Stopping, Standby };
std::string_view to_string(Health h);

// One Redis target as the status line shows it.
struct RedisStatus {
  std::string name;  // shown when there are several targets
  redis::State state = redis::State::Disconnected;
  std::string server;
  double down_seconds = 0;  // how long it has been unreachable
  const redis::Stats* stats = nullptr;
  std::string error;        // its last error, shown while batches are failing
  std::string role;         // "master", "replica"; "" unknown
  bool tls = false;         // rediss://
  std::string tls_version;  // "TLSv1.3" once negotiated
};

struct StatusInput {
  std::vector<std::pair<std::string, SourceStatus>> sources;  // by name
  const PipelineStats* pipeline = nullptr;
  std::vector<RedisStatus> redis;   // every target, in config order
  double changes_per_second = 0;    // over the last interval
  std::size_t in_flight = 0;        // transactions committed, not yet confirmed
  std::int64_t wal_warn_bytes = 0;  // slot lag above this degrades health
  std::string rules;                // "12 rules, hash 3fa2c1d0"
  bool stopping = false;            // SIGTERM received: draining or stopped
  double uptime_seconds = 0;        // since the daemon started
};

// How long `starting` may last: past it (or once a source failed), not yet streaming is
// `degraded`, so a daemon that never got going cannot look merely slow forever.
inline constexpr double kStartupGraceSeconds = 60;

Health health(const StatusInput& in);
// What /healthz answers 200 for: healthy, catching up, and standby.
bool health_ok(Health h);
// The gauge pgbust_active: 0 when the source is standby (another instance holds its slot or
// lock), 1 otherwise (this instance is, or is trying to be, the active one; pgbust_source_up
// says whether it streams). So "source down" alerts can leave standby hosts out.
inline bool active(const SourceStatus& s) {
  return s.state != SourceState::Standby;
}
// e.g. "healthy: logical streaming at 0/16B3748 lag 0 B 0.0s; redis ready 127.0.0.1:6379 db 0
//       [master, no TLS];
//       41.2 changes/s; 1234 changes 310 txns; keys 512 patterns 3 bumps 40 publishes 12;
//       widened 2; errors 0; in flight 0; rules 12 (3fa2c1d0)"
// With several targets each is named: "redis eu ready ...; redis us backing off ...;".
std::string status_line(const StatusInput& in);
// "12.3 kB", "1.2 GB"
std::string human_bytes(std::int64_t bytes);

}  // namespace pgbust
