// sd_notify wrapper (see sdnotify.hpp).
#include "pgbust/ops/sdnotify.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>

namespace pgbust::sdnotify {

Notifier::Notifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  std::uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process.
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
    interval_ = std::chrono::microseconds(usec / 2);
}

bool Notifier::send(const std::string& state) {
  if (!enabled_) return false;
  return sd_notify(0, state.c_str()) > 0;
}

bool Notifier::ready() {
  return send("READY=1");
}

bool Notifier::status(std::string_view line) {
  // One assignment per line in the protocol: a newline in the text must not start another.
  std::string state = "STATUS=";
  for (char c : line) state += (c == '\n' || c == '\r') ? ' ' : c;
  return send(state);
}

bool Notifier::watchdog() {
  return interval_.count() > 0 && send("WATCHDOG=1");
}

bool Notifier::reloading() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
              static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
  return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool Notifier::stopping() {
  return send("STOPPING=1");
}

WatchdogTimer::WatchdogTimer(Notifier& notifier) : notifier_(notifier) {
  if (notifier_.watchdog_interval().count() > 0)
    next_ = Clock::now() + notifier_.watchdog_interval();
}

void WatchdogTimer::on_timer(TimePoint now) {
  notifier_.watchdog();
  next_ = now + notifier_.watchdog_interval();
}

}  // namespace pgbust::sdnotify
