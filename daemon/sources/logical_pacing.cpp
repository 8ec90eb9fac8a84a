// The logical source's acknowledgement ledger and read pacing (no I/O).
#include "pgbust/sources/logical_pacing.hpp"

#include <algorithm>

namespace pgbust::logical {

bool AckLedger::resume(Position slot_confirmed) {
  confirmed_ = std::max(confirmed_, slot_confirmed);
  return advance();
}

void AckLedger::restart(Position slot_confirmed) {
  confirmed_ = last_delivered_ = acked_ = slot_confirmed;
  idle_target_ = idle_requires_ = 0;
}

void AckLedger::delivered_own(Position end) {
  last_delivered_ = std::max(last_delivered_, end);
}

void AckLedger::delivered(Position end, std::int64_t commit_time_us) {
  last_delivered_ = std::max(last_delivered_, end);
  if (end > confirmed_) unconfirmed_.emplace_back(end, commit_time_us);
}

bool AckLedger::confirm(Position position) {
  // Only positions handed out can be confirmed: never report past them.
  position = std::min(position, last_delivered_);
  if (position <= confirmed_) return false;
  confirmed_ = position;
  while (!unconfirmed_.empty() && unconfirmed_.front().first <= confirmed_)
    unconfirmed_.pop_front();
  return advance();
}

bool AckLedger::keepalive(Position wal_end) {
  // Everything before this keepalive has been received, and commits the walsender decodes
  // later end after wal_end: once everything delivered so far is confirmed, wal_end is safe.
  idle_target_ = std::max(idle_target_, wal_end);
  idle_requires_ = last_delivered_;
  return advance();
}

bool AckLedger::advance() {
  Position t = confirmed_;
  if (confirmed_ >= idle_requires_) t = std::max(t, idle_target_);
  if (t <= acked_) return false;
  acked_ = t;
  return true;
}

void ReadPacer::reset(TimePoint now) {
  window_start_ = now;
  messages_ = 0;
  rest_ = std::chrono::milliseconds{0};
}

std::chrono::milliseconds ReadPacer::drained(TimePoint now) {
  const auto elapsed = now - window_start_;
  if (elapsed >= limits_.window) {
    // Messages per window, over however long the window lasted.
    const auto per_window = [&](int n) { return messages_ * limits_.window >= n * elapsed; };
    rest_ = per_window(limits_.very_busy) ? limits_.long_rest
            : per_window(limits_.busy)    ? limits_.short_rest
                                          : std::chrono::milliseconds{0};
    window_start_ = now;
    messages_ = 0;
  }
  return rest_;
}

}  // namespace pgbust::logical
