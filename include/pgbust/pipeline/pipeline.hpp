// Batching and acknowledgement: rules turn each source's changes into per-transaction key
// sets; committed transactions are coalesced into Redis batches; a source's position is
// confirmed only when every invalidation of it and of every earlier transaction (second
// deletes included) is applied in Redis (promise 2).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "pgbust/core/applier.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/core/source.hpp"
#include "pgbust/pipeline/ack_ledger.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust {

struct PipelineOptions {
  std::size_t max_keys_per_transaction = 100000;  // past this a rule widens
  std::size_t max_batch_keys = 50000;             // coalesced entries per Redis batch
  std::size_t max_queued_batches = 4;             // back-pressure threshold (batches with patterns,
                                                  // which wait for keyspace passes: 16 times this)
  std::size_t publish_max_items = 1000;           // keys listed in one PUBLISH message
  bool track_origins = false;  // fill Batch::origins (the dry run's per-rule counts)
};

// Counters for the status line and metrics.
struct PipelineStats {
  std::uint64_t changes = 0;         // row changes seen
  std::uint64_t matched = 0;         // changes some rule fired for
  std::uint64_t transactions = 0;    // committed transactions
  std::uint64_t keys = 0;            // exact keys queued for UNLINK (after per-txn dedup)
  std::uint64_t patterns = 0;        // patterns queued
  std::uint64_t bumps = 0;           // bumps queued
  std::uint64_t publishes = 0;       // messages queued
  std::uint64_t stream_entries = 0;  // stream entries queued (one per stream per transaction)
  std::uint64_t redeletes = 0;       // second deletes queued
  std::uint64_t widenings = 0;
  std::map<Unknown, std::uint64_t> widenings_by_reason;
  std::uint64_t applied_transactions = 0;  // confirmed to their source
  std::uint64_t emitted_messages = 0;      // application messages taken into a transaction
  std::map<std::string, std::uint64_t> emitted_rejected;  // by reason (EmittedRejection)
  double last_latency_seconds = -1;  // commit → applied, most recent transaction
};

// Row changes by table and operation, for metrics.
struct TableStats {
  std::string table;                    // schema.name
  std::uint64_t ops[4] = {0, 0, 0, 0};  // indexed by Op
};

// Per-rule counters (by rule name) for metrics.
struct RuleStats {
  std::uint64_t fired = 0, keys = 0, patterns = 0, bumps = 0, publishes = 0, widenings = 0;
};

class Pipeline : public ChangeSink, public Pollable {
 public:
  Pipeline(std::shared_ptr<const rules::RuleSet> rules, rules::EngineOptions engine_options,
           Applier& target, PipelineOptions options);
  ~Pipeline() override;

  // Swap the rule set; takes effect at the next point where no source is inside a
  // transaction (immediately when none is).
  void replace_rules(std::shared_ptr<const rules::RuleSet> rules);
  const rules::RuleSet& rules() const;

  // ChangeSink
  bool accepting() const override;
  void begin(Source& source) override;
  void change(Source& source, const ChangeEvent& event) override;
  void widen_table(Source& source, std::string_view schema, std::string_view table,
                   Unknown why) override;
  void commit(Source& source, Position position, std::int64_t commit_time_us) override;
  void abort(Source& source) override;
  void message(Source& source, Position lsn, bool transactional, std::string_view content) override;

  // Pollable: timers only (second deletes); no socket.
  int fd() const override { return -1; }
  short events() const override { return 0; }
  void on_ready(short) override {}
  // Second deletes due; or now, when the applier sits idle (only batches waiting for a
  // retry) while a batch accumulates.
  TimePoint deadline() const override;
  void on_timer(TimePoint now) override;

  // True when nothing is pending: every committed transaction confirmed to its source.
  bool idle() const;
  // Transactions committed and not yet confirmed.
  std::size_t in_flight() const;
  // Ledger records holding them (runs that become confirmable together share one).
  std::size_t ack_records() const { return ledger_.records(); }
  const PipelineStats& stats() const { return stats_; }
  const std::map<std::string, RuleStats>& rule_stats() const { return rule_stats_; }
  // Keyed by the source's TableInfo (stable per table); `table` names it.
  const std::unordered_map<const TableInfo*, TableStats>& table_stats() const {
    return table_stats_;
  }
  // Called with (seconds) whenever a transaction is confirmed; for the latency histogram.
  std::function<void(double)> on_latency;

 private:
  struct Txn;
  struct Pending;
  class TxnSink;

  Txn& txn_for(Source& source);
  void close_txn(Txn& txn);
  RuleStats& rule_stats_for(const rules::Rule& rule);
  // The KeySet tag of `name` when origins are tracked (0 otherwise); origin_name() reverses it.
  std::uint32_t origin_for(const std::string& name);
  const std::string& origin_name(std::uint32_t tag) const { return origin_names_[tag]; }
  void maybe_swap_rules();
  void flush();
  void batch_done(std::shared_ptr<Pending> pending);
  void add_publishes(Source& source, Position position, Txn& txn, Pending& pending);
  void settle();

  std::shared_ptr<const rules::RuleSet> rules_;
  std::shared_ptr<const rules::RuleSet> next_rules_;
  rules::EngineOptions engine_options_;
  std::unique_ptr<rules::Engine> engine_;
  Applier& target_;
  PipelineOptions options_;
  PipelineStats stats_;
  std::map<std::string, RuleStats> rule_stats_;
  // Per-change lookups by rule object instead of by name; cleared when the rules change.
  std::unordered_map<const rules::Rule*, RuleStats*> rule_stats_cache_;
  const rules::Rule* last_rule_ = nullptr;  // the most recent lookup (runs of one rule)
  RuleStats* last_rule_stats_ = nullptr;
  std::unordered_map<const TableInfo*, TableStats> table_stats_;
  // Origins (rule names, kApplicationOrigin) by tag; tag 0 is "not tracked".
  std::vector<std::string> origin_names_{""};
  std::unordered_map<std::string, std::uint32_t> origin_tags_;

  // Each source's transaction buffers, kept between transactions so their memory is reused.
  std::unordered_map<Source*, std::unique_ptr<Txn>> txns_;
  std::size_t open_txns_ = 0;              // transactions being read
  std::unique_ptr<Pending> accumulating_;  // committed, not yet sent
  std::size_t batches_in_target_ = 0;
  std::size_t pattern_batches_in_target_ = 0;  // of those, with pattern deletes
  // Batches with patterns the target may hold per max_queued_batches (see accepting()).
  static constexpr std::size_t kPatternBatchesPerQueued = 16;
  // Committed transactions not yet confirmed, per source, in commit order.
  AckLedger ledger_;
  struct Redelete {
    TimePoint due;
    Batch batch;
    AckLedger::Group group;  // the records it holds back
  };
  std::deque<Redelete> redeletes_;  // due times are nondecreasing per delay; sorted on insert
};

}  // namespace pgbust
