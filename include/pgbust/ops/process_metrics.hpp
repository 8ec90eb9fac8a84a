// The standard process_* metrics (as the Prometheus client libraries export them) read from
// /proc/self: start time, CPU seconds, resident and virtual memory, open and maximum fds.
#pragma once

#include <optional>

#include "pgbust/ops/metrics.hpp"

namespace pgbust {

struct ProcessStats {
  double start_time_seconds = 0;  // since the Unix epoch
  double cpu_seconds = 0;         // user + system
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double open_fds = 0;
  double max_fds = 0;  // RLIMIT_NOFILE soft limit
};

// Reads /proc/self/stat and /proc/self/fd (both readable under the unit's ProcSubset=pid);
// nullopt when /proc is not there.
std::optional<ProcessStats> read_process_stats();

// Registers process_* series on `registry`, refreshed at every render.
void register_process_metrics(metrics::Registry& registry);

}  // namespace pgbust
