// `pgbust run --dry-run` (shadow mode): a target that writes nothing to Redis. It counts the
// commands each batch would send, optionally appends them to a JSON-lines trace, and
// completes the batch on the next loop round, so the pipeline confirms as usual (to a
// temporary slot, or to a slot the source never confirms to).
#pragma once

#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "pgbust/redis/redis.hpp"

namespace pgbust::redis {

class DryRunTarget final : public AnyTarget {
 public:
  // `trace`: a file to append one JSON object per command to ("" for none). Throws Error
  // naming the file when it cannot be opened.
  explicit DryRunTarget(const std::string& trace);
  ~DryRunTarget() override;

  // Applier
  void apply(Batch batch, std::function<void()> done) override;
  bool idle() const override { return done_.empty(); }
  // Pollable: no socket; due at once while batches wait for their completion.
  int fd() const override { return -1; }
  short events() const override { return 0; }
  void on_ready(short) override {}
  TimePoint deadline() const override;
  void on_timer(TimePoint now) override;
  // AnyTarget
  State state() const override { return State::Ready; }
  const Stats& stats() const override { return stats_; }
  std::string last_error() const override { return {}; }
  std::string describe() const override { return "dry run (no Redis writes)"; }
  std::string name() const override { return "dry-run"; }
  std::string role() const override { return {}; }
  bool tls() const override { return false; }
  std::string tls_version() const override { return {}; }
  std::size_t queued() const override { return done_.size(); }
  void attach(Loop& loop) override { loop.add(this); }
  void detach(Loop& loop) override { loop.remove(this); }
  void close() noexcept override;
  void on_pass(std::function<void(double)>) override {}  // no keyspace passes: nothing scanned

  // Commands that would have been sent, by command: "UNLINK" (one per key), "SCAN+UNLINK"
  // (one per pattern), "INCR" (one per bump), "PUBLISH", "XADD".
  const std::map<std::string, std::uint64_t>& commands() const { return commands_; }
  // The same by (rule, command): the rule from Batch::origins ("" when the batch carries
  // none), for pgbust_dry_run_commands_total{rule,command}.
  const std::map<std::pair<std::string, std::string>, std::uint64_t>& rule_commands() const {
    return rule_commands_;
  }

 private:
  void trace(std::string_view command, std::string_view key, std::string_view message,
             const std::vector<std::string>& origins, std::size_t i);

  std::FILE* trace_ = nullptr;
  std::string trace_path_;
  Stats stats_;
  std::map<std::string, std::uint64_t> commands_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> rule_commands_;
  std::deque<std::function<void()>> done_;
};

}  // namespace pgbust::redis
