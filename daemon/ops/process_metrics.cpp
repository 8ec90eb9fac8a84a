// process_* metrics from /proc/self, refreshed at scrape time.
#include "pgbust/ops/process_metrics.hpp"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace pgbust {

namespace {

double seconds_of(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

std::optional<ProcessStats> read_process_stats() {
  std::ifstream in("/proc/self/stat");
  std::string text;
  if (!in || !std::getline(in, text)) return std::nullopt;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields resume after
  // the last ')'. Field 3 (state) is the first after it.
  auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 1));
  std::vector<std::string> f;  // f[0] is field 3
  for (std::string w; fields >> w;) f.push_back(w);
  // utime 14, stime 15, starttime 22, vsize 23, rss 24 (1-based, as in proc(5)).
  auto field = [&](int n) -> double {
    std::size_t i = static_cast<std::size_t>(n - 3);
    return i < f.size() ? std::stod(f[i]) : 0.0;
  };
  if (f.size() < 22) return std::nullopt;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  ProcessStats s;
  s.cpu_seconds = (field(14) + field(15)) / ticks;
  s.virtual_bytes = field(23);
  s.resident_bytes = field(24) * page;
  // starttime counts ticks since boot; /proc/stat's btime is hidden under ProcSubset=pid, so
  // place it with the boot-time clock instead: now - (uptime - starttime).
  double since_start = seconds_of(CLOCK_BOOTTIME) - field(22) / ticks;
  s.start_time_seconds = seconds_of(CLOCK_REALTIME) - since_start;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec))
    s.open_fds += 1;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0)
    s.max_fds = lim.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(lim.rlim_cur);
  return s;
}

void register_process_metrics(metrics::Registry& registry) {
  auto& start = registry.gauge("process_start_time_seconds",
                               "Start time of the process since unix epoch in seconds.");
  auto& cpu = registry.float_counter("process_cpu_seconds_total",
                                     "Total user and system CPU time spent in seconds.");
  auto& rss = registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes.");
  auto& vsz = registry.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
  auto& fds = registry.gauge("process_open_fds", "Number of open file descriptors.");
  auto& max = registry.gauge("process_max_fds", "Maximum number of open file descriptors.");
  // The start time is fixed: compute it once, so scrapes do not jitter by clock rounding.
  auto first = read_process_stats();
  if (first) start.set(first->start_time_seconds);
  registry.on_render([&cpu, &rss, &vsz, &fds, &max] {
    auto s = read_process_stats();
    if (!s) return;
    cpu.set(s->cpu_seconds);
    rss.set(s->resident_bytes);
    vsz.set(s->virtual_bytes);
    fds.set(s->open_fds);
    max.set(s->max_fds);
  });
}

}  // namespace pgbust
