// Where invalidations go: the batch of idempotent commands one flush must apply, and the
// interface the pipeline hands batches to (the Redis target implements it; tests may too).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace pgbust {

// What one flush must do. Every command is idempotent, so a batch interrupted by a lost
// connection is simply applied again from the start.
struct Batch {
  std::vector<std::string> deletes;   // UNLINK, in chunks
  std::vector<std::string> patterns;  // SCAN MATCH pattern COUNT n, UNLINK what it finds
  std::vector<std::string> bumps;     // SET key <seed> NX; INCR key (seed: µs clock, so an
                                      // evicted counter never repeats an old value)
  std::vector<std::pair<std::string, std::string>> publishes;  // channel, message: sent last,
                                                               // after everything else succeeded
  bool empty() const {
    return deletes.empty() && patterns.empty() && bumps.empty() && publishes.empty();
  }
};

// Applies batches in the order they were handed over. `done` runs from the event loop (never
// inside apply()) once every command of the batch has succeeded; for a batch that never
// succeeds it never runs, so nothing past it is acknowledged (promise 2).
class Applier {
 public:
  virtual ~Applier() = default;
  virtual void apply(Batch batch, std::function<void()> done) = 0;
};

}  // namespace pgbust
