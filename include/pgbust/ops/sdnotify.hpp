// systemd readiness, status, watchdog and reload notifications (sd_notify), and a loop timer
// that pings the watchdog. Every call is a no-op when NOTIFY_SOCKET is unset.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "pgbust/core/loop.hpp"

namespace pgbust::sdnotify {

class Notifier {
 public:
  // Reads NOTIFY_SOCKET and the watchdog settings (WATCHDOG_USEC, WATCHDOG_PID) once.
  Notifier();

  bool enabled() const { return enabled_; }  // NOTIFY_SOCKET was set
  // Each returns true when the datagram was sent; false when disabled or sending failed.
  bool ready();                        // READY=1 (also after a reload)
  bool status(std::string_view line);  // STATUS=<line>; newlines become spaces
  bool watchdog();                     // WATCHDOG=1, only when the watchdog is enabled
  bool reloading();                    // RELOADING=1 + MONOTONIC_USEC=<now> (systemd 253+)
  bool stopping();                     // STOPPING=1
  // How often watchdog() should be called: half of WATCHDOG_USEC; zero when disabled.
  std::chrono::microseconds watchdog_interval() const { return interval_; }

 private:
  bool send(const std::string& state);
  bool enabled_ = false;
  std::chrono::microseconds interval_{0};
};

// A Pollable without a socket: pings the watchdog every watchdog_interval(). Pinging from a
// loop timer proves the loop is turning. Never due when the watchdog is disabled.
class WatchdogTimer : public Pollable {
 public:
  explicit WatchdogTimer(Notifier& notifier);
  int fd() const override { return -1; }
  short events() const override { return 0; }
  void on_ready(short) override {}
  TimePoint deadline() const override { return next_; }
  void on_timer(TimePoint now) override;

 private:
  Notifier& notifier_;
  TimePoint next_ = kNever;
};

}  // namespace pgbust::sdnotify
