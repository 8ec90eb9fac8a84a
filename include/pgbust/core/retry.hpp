// Retrying a connection, protocol-independent (no network libraries): the backoff policy every
// reconnecting component shares, its jittered exponential delays, and a limiter for repeated
// log lines.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include "pgbust/core/loop.hpp"

namespace pgbust {

// How a component retries. One policy for all of them; each picks its numbers.
struct RetryPolicy {
  std::chrono::milliseconds min{250};     // the first delay after a failure
  std::chrono::milliseconds max{30'000};  // delays double per failure up to this
  double jitter = 0.5;                    // each delay is drawn from [(1 - jitter) * step, step]
  // A connection that stayed up this long before failing starts the backoff from `min`
  // again; one that failed sooner keeps growing it (a server that accepts and then fails
  // every connection is not hammered).
  std::chrono::milliseconds stable_after{30'000};
  // Repeated identical failure lines are logged at most once per this interval.
  std::chrono::milliseconds log_interval{30'000};
};

// Exponential backoff from `min` to `max` with jitter, so many clients do not retry in lock
// step.
class Backoff {
 public:
  explicit Backoff(const RetryPolicy& policy);
  std::chrono::milliseconds next();
  void reset() { failures_ = 0; }
  int failures() const { return failures_; }

 private:
  std::chrono::milliseconds min_, max_;
  double jitter_;
  int failures_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
};

// Repeated identical lines are logged once, then at most once per interval with how many were
// held back; a different message is logged at once.
class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds interval) : interval_(interval) {}
  // True when `message` should be logged now; `suppressed` then holds how many identical
  // messages were not logged since the last one that was.
  bool allow(std::string_view message, TimePoint now, std::uint64_t& suppressed);

 private:
  std::chrono::milliseconds interval_;
  std::string last_;
  TimePoint logged_{};
  std::uint64_t held_ = 0;
};

// "1.25s" for log lines.
std::string seconds_text(Clock::duration d);

}  // namespace pgbust
