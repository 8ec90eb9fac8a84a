// Where invalidations go: the batch of idempotent commands one flush must apply, and the
// interface the pipeline hands batches to (the Redis target implements it; tests may too).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace pgbust {

// The origin of commands from pg_logical_emit_message (no rule asked for them).
inline constexpr const char* kApplicationOrigin = "(application)";

// What one flush must do. Every command is idempotent, so a batch interrupted by a lost
// connection is simply applied again from the start.
struct Batch {
  std::vector<std::string> deletes;   // UNLINK, in chunks
  std::vector<std::string> patterns;  // SCAN MATCH pattern COUNT n, UNLINK what it finds
  std::vector<std::string> bumps;     // SET key <seed> NX; INCR key (seed: µs clock, so an
                                      // evicted counter never repeats an old value)
  std::vector<std::pair<std::string, std::string>> publishes;  // channel, message: sent last,
                                                               // after everything else succeeded
  // stream, message: XADD stream MAXLEN ~ N * message <message>, after the publishes. A batch
  // applied again adds its entries again (at least once, like publishes).
  std::vector<std::pair<std::string, std::string>> streams;
  // The rule each command came from, parallel to the lists above (kApplicationOrigin for
  // the application's own messages): filled only when the pipeline is asked to track
  // origins (`run --dry-run`, for its per-rule counts), empty otherwise. A key several rules
  // named is sent once and belongs to the first of them.
  struct Origins {
    std::vector<std::string> deletes, patterns, bumps, publishes, streams;
  } origins;
  bool empty() const {
    return deletes.empty() && patterns.empty() && bumps.empty() && publishes.empty() &&
           streams.empty();
  }
};

// Applies batches, starting them in the order they were handed over. `done` runs from the
// event loop (never inside apply()) once every command of the batch has succeeded; for a
// batch that never succeeds it never runs. A batch that keeps failing may be retried while
// later ones go on, so `done` may run out of order: the pipeline confirms positions in
// commit order regardless, so nothing past a failing batch is acknowledged (promise 2).
class Applier {
 public:
  virtual ~Applier() = default;
  virtual void apply(Batch batch, std::function<void()> done) = 0;
  // True when no batch handed over is being worked on (each one left waits for a retry), so
  // one handed over now starts at once: the pipeline then hands over what it accumulated
  // instead of waiting for a completion. Default: only when nothing is handed over, which
  // the pipeline knows itself.
  virtual bool idle() const { return false; }
};

}  // namespace pgbust
