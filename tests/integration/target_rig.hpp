// A redis::Target plugged into its own Loop and driven by hand, for the Redis target tests
// (plain, TLS, ACL).
#pragma once

#include <chrono>
#include <functional>

#include "pgbust/core/loop.hpp"
#include "pgbust/redis/redis.hpp"

namespace pgbust::test {

struct TargetRig {
  Loop loop;
  redis::Target target;
  explicit TargetRig(const redis::Options& o) : target(o) { loop.add(&target); }
  ~TargetRig() { loop.remove(&target); }
  // Runs loop rounds until `pred` or `timeout`; returns pred().
  bool run_until(const std::function<bool()>& pred,
                 std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= end) return false;
      loop.run_once(std::chrono::milliseconds(20));
    }
    return true;
  }
  void run_for(std::chrono::milliseconds d) {
    run_until([] { return false; }, d);
  }
  // Applies one batch and runs until it is done.
  bool apply(Batch b, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    bool done = false;
    target.apply(std::move(b), [&] { done = true; });
    return run_until([&] { return done; }, timeout);
  }
};

}  // namespace pgbust::test
