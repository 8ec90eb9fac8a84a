// Several Redis targets as one Applier: every batch goes to every target, each with its own
// key prefix, and is done only when every target has applied it (promise 2 per target).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "pgbust/core/applier.hpp"

namespace pgbust {

// Hands each batch to every member at once, so a target that is down holds confirmation
// (done() waits for it) and, through the pipeline's bound on batches not yet done,
// back-pressure; the other targets go on applying every batch handed over, up to that bound.
// A member's key_prefix goes in front of each key and bump (glob-escaped in front of each
// pattern); publish and stream messages are sent as they are. A batch with pattern deletes is
// thus done only once the keyspace pass on every target has ended (each Target's done()
// waits for its own pass), while later batches go on beside those passes.
class FanOut : public Applier {
 public:
  struct Member {
    Applier* applier;
    std::string key_prefix;
  };
  explicit FanOut(std::vector<Member> members);

  void apply(Batch batch, std::function<void()> done) override;
  // True when some member is idle: a batch handed over now starts at once there (the others
  // queue it, within the pipeline's bound), so a target that is down does not stop the rest.
  // A Target whose batches wait only for a keyspace pass is idle (Target::idle).
  bool idle() const override;

  // `batch` as the member with this prefix must apply it.
  static Batch prefixed(Batch batch, const std::string& key_prefix);

 private:
  std::vector<Member> members_;
};

}  // namespace pgbust
