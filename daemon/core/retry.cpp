// Backoff delays and the repeated-line limiter shared by every reconnecting component.
#include "pgbust/core/retry.hpp"

#include <algorithm>
#include <cstdio>

namespace pgbust {

Backoff::Backoff(const RetryPolicy& policy)
    : min_(std::max(policy.min, std::chrono::milliseconds(1))),
      max_(std::max(policy.max, min_)),
      jitter_(std::clamp(policy.jitter, 0.0, 1.0)) {}

std::chrono::milliseconds Backoff::next() {
  failures_ = std::min(failures_ + 1, 30);
  auto step = min_;
  for (int i = 1; i < failures_ && step < max_; ++i) step *= 2;
  step = std::min(step, max_);
  auto low = static_cast<long long>(static_cast<double>(step.count()) * (1.0 - jitter_));
  std::uniform_int_distribution<long long> pick(std::max<long long>(1, low), step.count());
  return std::chrono::milliseconds(pick(rng_));
}

bool LogLimiter::allow(std::string_view message, TimePoint now, std::uint64_t& suppressed) {
  suppressed = 0;
  if (message != last_) {
    last_.assign(message);
    logged_ = now;
    held_ = 0;
    return true;
  }
  if (now - logged_ >= interval_) {
    suppressed = held_;
    held_ = 0;
    logged_ = now;
    return true;
  }
  ++held_;
  return false;
}

std::string seconds_text(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fs", std::chrono::duration<double>(d).count());
  return buf;
}

}  // namespace pgbust
