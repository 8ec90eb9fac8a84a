// The logical source's pure logic, apart from its connection: what to acknowledge to the slot
// (AckLedger) and how long to rest between reads of a busy stream (ReadPacer).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <utility>

#include "pgbust/core/loop.hpp"
#include "pgbust/core/source.hpp"

namespace pgbust::logical {

// The position reported to the server as flushed. It follows the pipeline's confirmation, or
// the WAL end of a keepalive once every transaction delivered before that keepalive is
// confirmed (an idle slot then does not hold WAL). It never moves backwards, and never past
// what was delivered (a confirmation beyond it is clamped).
class AckLedger {
 public:
  // At connect: the slot's confirmed position is confirmed already. True when reported() moved.
  bool resume(Position slot_confirmed);
  // Another stream (a re-created slot, another system): positions start afresh at the
  // slot's confirmed position.
  void restart(Position slot_confirmed);
  // A transaction ending at `end` was handed to the sink (commit time in µs, for the lag).
  void delivered(Position end, std::int64_t commit_time_us);
  // A transaction of pgbust's own (a gap's widening) was handed to the sink at `end`.
  void delivered_own(Position end);
  // The pipeline confirmed everything up to `position`. True when reported() moved.
  bool confirm(Position position);
  // A keepalive outside a transaction: everything before `wal_end` has been received.
  // True when reported() moved.
  bool keepalive(Position wal_end);

  Position reported() const { return acked_; }
  Position confirmed() const { return confirmed_; }
  Position last_delivered() const { return last_delivered_; }
  // Where START_REPLICATION resumes from after a reconnect (nothing delivered is skipped).
  Position resume_from() const {
    return confirmed_ > last_delivered_ ? confirmed_ : last_delivered_;
  }
  bool caught_up() const { return confirmed_ >= last_delivered_; }
  // No delivered transaction past the confirmed position is waiting for confirmation.
  bool none_unconfirmed() const { return unconfirmed_.empty(); }
  // The commit time of the oldest delivered, unconfirmed transaction; 0 when none.
  std::int64_t oldest_unconfirmed_us() const {
    return unconfirmed_.empty() ? 0 : unconfirmed_.front().second;
  }

 private:
  bool advance();

  Position confirmed_ = 0;       // the pipeline's confirmation (or the slot's, at connect)
  Position last_delivered_ = 0;  // end LSN of the last transaction handed to the sink
  Position idle_target_ = 0;     // WAL end from a keepalive outside a transaction
  Position idle_requires_ = 0;   // ... usable once confirmed_ reaches this
  Position acked_ = 0;           // what is reported as flushed; only moves forward
  std::deque<std::pair<Position, std::int64_t>> unconfirmed_;  // (end LSN, commit time µs)
};

// Batched reads while the stream is busy: after draining the socket, rest before reading
// again, longer the busier the stream was over the last window. Each wakeup then handles
// many messages instead of the few a walsender sends at a time. Below `busy` messages per
// window every message is read as it arrives.
class ReadPacer {
 public:
  struct Limits {
    std::chrono::milliseconds window{10};
    int busy = 200;       // messages per window (20k/s): rest `short_rest`
    int very_busy = 500;  // (50k/s, catch-up): rest `long_rest`
    std::chrono::milliseconds short_rest{1};
    std::chrono::milliseconds long_rest{2};
  };

  ReadPacer() : ReadPacer(Limits{}) {}
  explicit ReadPacer(Limits limits) : limits_(limits) {}

  // A new connection: no rate known yet.
  void reset(TimePoint now);
  void message() { ++messages_; }
  // The socket is drained: how long to rest before reading again (zero: do not rest).
  std::chrono::milliseconds drained(TimePoint now);
  // The stream is busy enough that a drain should read the socket again before resting.
  bool busy() const { return rest_.count() > 0; }

 private:
  Limits limits_;
  TimePoint window_start_{};
  std::int64_t messages_ = 0;
  std::chrono::milliseconds rest_{0};
};

}  // namespace pgbust::logical
