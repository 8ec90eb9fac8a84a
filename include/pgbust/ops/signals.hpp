// Signals as events: SIGTERM/SIGINT/SIGHUP are blocked and read from a signalfd in the loop,
// so no work happens inside a signal handler.
#pragma once

#include <csignal>
#include <functional>

#include "pgbust/core/loop.hpp"

namespace pgbust {

class Signals : public Pollable {
 public:
  // Blocks the signals for the process and opens the signalfd; throws Error on failure.
  explicit Signals(std::function<void(int)> on_signal);
  ~Signals() override;  // restores the signal mask
  int fd() const override { return fd_; }
  short events() const override;
  void on_ready(short revents) override;
  TimePoint deadline() const override { return kNever; }
  void on_timer(TimePoint) override {}

 private:
  int fd_ = -1;
  sigset_t old_mask_{};
  std::function<void(int)> on_signal_;
};

}  // namespace pgbust
