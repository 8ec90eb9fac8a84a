// Batching and acknowledgement: per-transaction dedup, coalescing across commits, ordered
// confirmation to each source only after Redis applied the work (second deletes included).
#include "pgbust/pipeline/pipeline.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>

#include "pgbust/core/emitted.hpp"
#include "pgbust/core/log_fields.hpp"
#include "pgbust/core/quote.hpp"
#include "pgbust/pipeline/key_set.hpp"
#include "pgbust/pipeline/publish.hpp"

namespace pgbust {

namespace {

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What one transaction publishes on one channel.
struct PublishInfo {
  PublishContent content;
  std::set<std::string> rules;
  std::uint32_t origin = 0;                // the first rule's tag (tracked origins only)
  std::unordered_set<std::string> listed;  // each key once per message, whichever rule named it
  std::size_t items = 0;
};

}  // namespace

// Keys live in KeySets (one buffer per set, no allocation per key); a source's Txn is
// cleared and reused from one transaction to the next.
struct Pipeline::Txn {
  bool open = false;
  KeySet deletes, patterns, bumps;
  KeySet redelete_keys, redelete_patterns;
  std::chrono::milliseconds redelete_after{0};
  std::map<std::string, PublishInfo> publishes;  // by channel
  std::map<std::string, PublishInfo> streams;    // by stream key
  std::unordered_set<const rules::Rule*> overflowed;
  std::size_t total = 0;
  // The table of the change being evaluated (valid during that call), for publish messages.
  std::string_view schema, table;
  std::string qualified;  // scratch: schema.table

  const std::string& table_name() {
    qualified.assign(schema).append(".").append(table);
    return qualified;
  }
  void clear() {
    deletes.clear();
    patterns.clear();
    bumps.clear();
    redelete_keys.clear();
    redelete_patterns.clear();
    redelete_after = std::chrono::milliseconds{0};
    publishes.clear();
    streams.clear();
    overflowed.clear();
    total = 0;
  }
};

struct Pipeline::Pending {
  KeySet deletes, patterns, bumps;
  KeySet redelete_keys, redelete_patterns;
  std::chrono::milliseconds redelete_after{0};
  std::vector<std::pair<std::string, std::string>> publishes;
  std::vector<std::pair<std::string, std::string>> streams;
  std::vector<std::uint32_t> publish_tags, stream_tags;  // tracked origins only
  AckLedger::Group group = AckLedger::kNothing;          // the transactions it applies
  std::size_t size() const {
    return deletes.size() + patterns.size() + bumps.size() + publishes.size() + streams.size() +
           redelete_keys.size() + redelete_patterns.size();
  }
  bool has_actions() const { return size() != 0; }
};

// Receives one change's actions from the rule engine into the source's open transaction.
class Pipeline::TxnSink : public rules::Sink {
 public:
  TxnSink(Pipeline& p, Txn& t) : p_(p), t_(t) {}

  void emit(const rules::Rule& rule, rules::Action action, std::string_view key) override {
    add(rule, action, key, false);
  }
  // Deleted like a pattern, but never again after redelete_after (see rules::Sink).
  void emit_widened_bump(const rules::Rule& rule, std::string_view pattern) override {
    add(rule, rules::Action::DeletePattern, pattern, true);
  }

  void add(const rules::Rule& rule, rules::Action action, std::string_view key, bool widened_bump) {
    if (!widening_ && !t_.overflowed.empty() && t_.overflowed.contains(&rule))
      return;  // its widened pattern covers it
    if (!widening_ && t_.total >= p_.options_.max_keys_per_transaction) {
      // Past the per-transaction limit the rule widens instead of growing (promise 5).
      t_.overflowed.insert(&rule);
      widening_ = true;
      p_.engine_->widen_rule(rule, Unknown::TooManyKeys, *this);
      widening_ = false;
      return;
    }
    RuleStats& stats = p_.rule_stats_for(rule);
    const std::uint32_t tag = p_.origin_for(rule.name);
    bool added = false;
    switch (action) {
      case rules::Action::Delete:
        added = t_.deletes.insert(key, tag);
        if (added) ++stats.keys;
        break;
      case rules::Action::DeletePattern:
        added = t_.patterns.insert(key, tag);
        if (added) ++stats.patterns;
        break;
      case rules::Action::Bump:
        added = t_.bumps.insert(key, tag);
        if (added) ++stats.bumps;
        break;
    }
    if (added) ++t_.total;
    // A second delete is owed whenever a rule that asks for one names the key, even if an
    // earlier rule already queued the first delete.
    if (rule.redelete_after.count() > 0 && action != rules::Action::Bump && !widened_bump) {
      (action == rules::Action::Delete ? t_.redelete_keys : t_.redelete_patterns).insert(key, tag);
      t_.redelete_after = std::max(t_.redelete_after, rule.redelete_after);
    }
    // The message lists what this rule invalidated, even when an earlier rule of the same
    // transaction already queued the key.
    if (!rule.publish.empty()) list(publish_info(rule), action, key);
    if (!rule.stream.empty()) list(stream_info(rule), action, key);
  }

  void list(PublishInfo& info, rules::Action action, std::string_view key) {
    std::string k(key);
    if (info.listed.contains(k)) return;
    if (info.items >= p_.options_.publish_max_items) {
      info.content.truncated = true;
      return;
    }
    ++info.items;
    auto& c = info.content;
    auto& list = action == rules::Action::Delete          ? c.keys
                 : action == rules::Action::DeletePattern ? c.patterns
                                                          : c.revisions;
    info.listed.insert(k);
    list.push_back(std::move(k));
  }

  // A rule that fired publishes even when it has no key to list (publish-only rules).
  void fired(const rules::Rule& rule) override {
    ++p_.rule_stats_for(rule).fired;
    if (!rule.publish.empty()) publish_info(rule);
    if (!rule.stream.empty()) stream_info(rule);
  }

  PublishInfo& publish_info(const rules::Rule& rule) {
    return info(t_.publishes[rule.publish], rule);
  }
  PublishInfo& stream_info(const rules::Rule& rule) { return info(t_.streams[rule.stream], rule); }
  PublishInfo& info(PublishInfo& info, const rules::Rule& rule) {
    const std::string& table = t_.table_name();
    if (!info.content.tables.contains(table)) info.content.tables.insert(table);
    info.rules.insert(rule.name);
    if (info.origin == 0) info.origin = p_.origin_for(rule.name);
    return info;
  }

  void widened(const rules::Rule& rule, Unknown why, std::string_view detail) override {
    auto& s = p_.stats_;
    ++s.widenings;
    ++s.widenings_by_reason[why];
    if (!rule.publish.empty() && is_gap(why)) publish_info(rule).content.gap = true;
    if (!rule.stream.empty() && is_gap(why)) stream_info(rule).content.gap = true;
    ++p_.rule_stats_for(rule).widenings;
    LogScope scope(LogFields::of_rule(rule.name));
    spdlog::debug("rule {}: widened: {}", rule.name, detail);
  }

 private:
  Pipeline& p_;
  Txn& t_;
  bool widening_ = false;
};

Pipeline::Pipeline(std::shared_ptr<const rules::RuleSet> rules, rules::EngineOptions engine_options,
                   Applier& target, PipelineOptions options)
    : rules_(std::move(rules)),
      engine_options_(std::move(engine_options)),
      engine_(std::make_unique<rules::Engine>(rules_, engine_options_)),
      target_(target),
      options_(options) {}

Pipeline::~Pipeline() = default;

const rules::RuleSet& Pipeline::rules() const {
  return *rules_;
}

void Pipeline::replace_rules(std::shared_ptr<const rules::RuleSet> rules) {
  next_rules_ = std::move(rules);
  maybe_swap_rules();
}

void Pipeline::maybe_swap_rules() {
  if (!next_rules_ || open_txns_ != 0) return;
  // Between transactions: every later change is matched against the new rules only.
  rule_stats_cache_.clear();
  last_rule_ = nullptr;
  rules_ = std::move(next_rules_);
  next_rules_.reset();
  engine_ = std::make_unique<rules::Engine>(rules_, engine_options_);
}

// Batches with pattern deletes wait for a keyspace pass (seconds over a large keyspace) while
// later batches are applied beside them, so they have their own, larger allowance: counting
// them with the others would stop reading the sources for the length of a pass, which is the
// head-of-line blocking the target avoids (issue 14). Both counts stay bounded.
bool Pipeline::accepting() const {
  return batches_in_target_ - pattern_batches_in_target_ < options_.max_queued_batches &&
         pattern_batches_in_target_ < kPatternBatchesPerQueued * options_.max_queued_batches;
}

std::uint32_t Pipeline::origin_for(const std::string& name) {
  if (!options_.track_origins) return 0;
  auto [it, added] = origin_tags_.try_emplace(name, 0);
  if (added) {
    it->second = static_cast<std::uint32_t>(origin_names_.size());
    origin_names_.push_back(name);
  }
  return it->second;
}

RuleStats& Pipeline::rule_stats_for(const rules::Rule& rule) {
  if (&rule == last_rule_) return *last_rule_stats_;
  auto [it, added] = rule_stats_cache_.try_emplace(&rule, nullptr);
  if (added) it->second = &rule_stats_[rule.name];
  last_rule_ = &rule;
  last_rule_stats_ = it->second;
  return *it->second;
}

Pipeline::Txn& Pipeline::txn_for(Source& source) {
  auto& slot = txns_[&source];
  if (!slot) slot = std::make_unique<Txn>();
  if (!slot->open) {
    slot->open = true;
    ++open_txns_;
  }
  return *slot;
}

void Pipeline::close_txn(Txn& txn) {
  txn.clear();
  txn.open = false;
  --open_txns_;
}

void Pipeline::begin(Source& source) {
  Txn& txn = txn_for(source);
  txn.clear();  // a begin() without commit/abort starts afresh
}

void Pipeline::change(Source& source, const ChangeEvent& event) {
  ++stats_.changes;
  auto& ts = table_stats_[event.table];
  if (ts.table.empty()) ts.table = event.table->schema + "." + event.table->name;
  ++ts.ops[static_cast<int>(event.op)];
  if (!engine_->has_rules(*event.table)) return;
  Txn& txn = txn_for(source);
  txn.schema = event.table->schema;
  txn.table = event.table->name;
  TxnSink sink(*this, txn);
  int fired = engine_->evaluate(event, sink);
  if (fired > 0) ++stats_.matched;
}

void Pipeline::widen_table(Source& source, std::string_view schema, std::string_view table,
                           Unknown why) {
  Txn& txn = txn_for(source);
  txn.schema = schema;
  txn.table = table;
  TxnSink sink(*this, txn);
  engine_->widen_table(schema, table, why, sink);
}

void Pipeline::abort(Source& source) {
  if (auto it = txns_.find(&source); it != txns_.end() && it->second->open) close_txn(*it->second);
  maybe_swap_rules();
}

// The application's own invalidations join its transaction: they are applied after its
// commit, in commit order, and confirmed like the rules' (README, "Invalidations from the
// application"). The key prefix is applied; patterns keep their wildcards (the prefix is
// glob-escaped). A message pgbust cannot use is counted and logged, never fatal.
void Pipeline::message(Source& source, Position lsn, bool transactional, std::string_view content) {
  EmittedRejection why;
  std::optional<EmittedInvalidation> inv;
  if (!transactional)
    why = {"non_transactional",
           "pg_logical_emit_message(false, ...) is not tied to a commit; emit it with "
           "transactional = true inside the transaction"};
  else
    inv = parse_emitted(content, why);
  if (!inv) {
    ++stats_.emitted_rejected[why.reason];
    constexpr std::size_t kShown = 200;
    spdlog::warn("{}: ignored the application message at {} ({}): {}; content {}{}", source.name(),
                 source.format_position(lsn), why.reason, why.message,
                 quote_for_log(content.substr(0, kShown)),
                 content.size() > kShown
                     ? fmt::format(" (first {} of {} bytes)", kShown, content.size())
                     : "");
    return;
  }
  ++stats_.emitted_messages;
  Txn& txn = txn_for(source);
  const std::string& prefix = engine_options_.key_prefix;
  const std::string prefix_glob = rules::glob_escape(prefix);
  std::string key;
  PublishContent listed;
  const std::uint32_t tag = origin_for(kApplicationOrigin);
  auto add = [&](KeySet& set, const std::string& pre, const std::string& k,
                 std::vector<std::string>& list) {
    key.assign(pre).append(k);
    if (set.insert(key, tag)) ++txn.total;
    list.push_back(key);
  };
  for (const auto& k : inv->deletes) add(txn.deletes, prefix, k, listed.keys);
  for (const auto& k : inv->patterns) add(txn.patterns, prefix_glob, k, listed.patterns);
  for (const auto& k : inv->bumps) add(txn.bumps, prefix, k, listed.revisions);
  for (const auto& channel : inv->publish) {
    auto& info = txn.publishes[channel];
    if (info.origin == 0) info.origin = tag;
    auto& c = info.content;
    auto list = [&](const std::vector<std::string>& from, std::vector<std::string>& to) {
      for (const auto& k : from) {
        if (info.listed.contains(k)) continue;
        if (info.items >= options_.publish_max_items) {
          c.truncated = true;
          return;
        }
        ++info.items;
        info.listed.insert(k);
        to.push_back(k);
      }
    };
    list(listed.keys, c.keys);
    list(listed.patterns, c.patterns);
    list(listed.revisions, c.revisions);
  }
}

void Pipeline::commit(Source& source, Position position, std::int64_t commit_time_us) {
  Txn* txn = nullptr;
  if (auto it = txns_.find(&source); it != txns_.end() && it->second->open) txn = it->second.get();
  ++stats_.transactions;
  if (!txn || (txn->total == 0 && txn->publishes.empty() && txn->streams.empty())) {
    // Nothing to invalidate: confirmable as soon as every earlier transaction is.
    if (txn) close_txn(*txn);
    ledger_.add(source, position, commit_time_us, AckLedger::kNothing);
    settle();
    maybe_swap_rules();
    return;
  }
  if (!accumulating_) {
    accumulating_ = std::make_unique<Pending>();
    accumulating_->group = ledger_.open_group();
  }
  Pending& p = *accumulating_;
  ledger_.add(source, position, commit_time_us, p.group);
  stats_.keys += txn->deletes.size();
  stats_.patterns += txn->patterns.size();
  stats_.bumps += txn->bumps.size();
  p.deletes.merge(txn->deletes);
  p.patterns.merge(txn->patterns);
  p.bumps.merge(txn->bumps);
  p.redelete_keys.merge(txn->redelete_keys);
  p.redelete_patterns.merge(txn->redelete_patterns);
  p.redelete_after = std::max(p.redelete_after, txn->redelete_after);
  add_publishes(source, position, *txn, p);
  close_txn(*txn);
  if (batches_in_target_ == 0 || p.size() >= options_.max_batch_keys || target_.idle()) flush();
  maybe_swap_rules();
}

void Pipeline::add_publishes(Source& source, Position position, Txn& txn, Pending& p) {
  if (txn.publishes.empty() && txn.streams.empty()) return;
  const std::string where = source.format_position(position);
  for (auto& [channel, info] : txn.publishes) {
    p.publishes.emplace_back(channel, publish_message(source.name(), where, info.content));
    if (options_.track_origins) p.publish_tags.push_back(info.origin);
    ++stats_.publishes;
    for (const auto& rule : info.rules) ++rule_stats_[rule].publishes;
  }
  for (auto& [stream, info] : txn.streams) {
    p.streams.emplace_back(stream, publish_message(source.name(), where, info.content));
    if (options_.track_origins) p.stream_tags.push_back(info.origin);
    ++stats_.stream_entries;
  }
}

void Pipeline::flush() {
  if (!accumulating_) return;
  std::shared_ptr<Pending> p(accumulating_.release());
  Batch batch;
  auto copy = [this](KeySet& from, std::vector<std::string>& to,
                     std::vector<std::string>& origins) {
    to.reserve(from.size());
    for (std::size_t i = 0; i < from.size(); ++i) to.emplace_back(from[i]);
    if (options_.track_origins)
      for (std::size_t i = 0; i < from.size(); ++i) origins.push_back(origin_name(from.tag(i)));
    from = KeySet();  // the batch holds them now
  };
  copy(p->deletes, batch.deletes, batch.origins.deletes);
  copy(p->patterns, batch.patterns, batch.origins.patterns);
  copy(p->bumps, batch.bumps, batch.origins.bumps);
  batch.publishes = std::move(p->publishes);
  batch.streams = std::move(p->streams);
  for (std::uint32_t t : p->publish_tags) batch.origins.publishes.push_back(origin_name(t));
  for (std::uint32_t t : p->stream_tags) batch.origins.streams.push_back(origin_name(t));
  ++batches_in_target_;
  const bool patterns = !batch.patterns.empty();
  if (patterns) ++pattern_batches_in_target_;
  target_.apply(std::move(batch), [this, p, patterns] {
    if (patterns) --pattern_batches_in_target_;
    batch_done(p);
  });
}

void Pipeline::batch_done(std::shared_ptr<Pending> p) {
  --batches_in_target_;
  if (!p->redelete_keys.empty() || !p->redelete_patterns.empty()) {
    // The stale-set race: a reader that fetched the old row before the commit may write it
    // back after our delete. A second delete after the delay removes it; the position waits.
    Redelete r;
    r.due = Clock::now() + p->redelete_after;
    for (std::size_t i = 0; i < p->redelete_keys.size(); ++i) {
      r.batch.deletes.emplace_back(p->redelete_keys[i]);
      if (options_.track_origins)
        r.batch.origins.deletes.push_back(origin_name(p->redelete_keys.tag(i)));
    }
    for (std::size_t i = 0; i < p->redelete_patterns.size(); ++i) {
      r.batch.patterns.emplace_back(p->redelete_patterns[i]);
      if (options_.track_origins)
        r.batch.origins.patterns.push_back(origin_name(p->redelete_patterns.tag(i)));
    }
    stats_.redeletes += r.batch.deletes.size() + r.batch.patterns.size();
    r.group = p->group;
    auto pos = std::upper_bound(redeletes_.begin(), redeletes_.end(), r.due,
                                [](TimePoint t, const Redelete& x) { return t < x.due; });
    redeletes_.insert(pos, std::move(r));
  } else {
    ledger_.applied(p->group);
  }
  settle();
  if (accumulating_ && batches_in_target_ == 0) flush();
}

TimePoint Pipeline::deadline() const {
  if (accumulating_ && target_.idle()) return TimePoint{};
  return redeletes_.empty() ? kNever : redeletes_.front().due;
}

void Pipeline::on_timer(TimePoint now) {
  if (accumulating_ && target_.idle()) flush();
  while (!redeletes_.empty() && redeletes_.front().due <= now) {
    Redelete r = std::move(redeletes_.front());
    redeletes_.pop_front();
    ++batches_in_target_;
    const bool patterns = !r.batch.patterns.empty();
    if (patterns) ++pattern_batches_in_target_;
    target_.apply(std::move(r.batch), [this, group = r.group, patterns] {
      --batches_in_target_;
      if (patterns) --pattern_batches_in_target_;
      ledger_.applied(group);
      settle();
      if (accumulating_ && batches_in_target_ == 0) flush();
    });
  }
}

void Pipeline::settle() {
  std::int64_t now_us = 0;
  auto seconds_since = [&](std::int64_t commit_us) {
    if (now_us == 0) now_us = wall_us();
    return std::max<std::int64_t>(0, now_us - commit_us) / 1e6;
  };
  ledger_.settle([&](const AckLedger::Record& r) {
    stats_.applied_transactions += r.transactions;
    // One latency sample per record: its oldest transaction's, the longest wait in the run.
    if (r.first_commit_us > 0 && on_latency) on_latency(seconds_since(r.first_commit_us));
    if (r.commit_time_us > 0) stats_.last_latency_seconds = seconds_since(r.commit_time_us);
  });
}

bool Pipeline::idle() const {
  return !accumulating_ && batches_in_target_ == 0 && redeletes_.empty() && ledger_.empty();
}

std::size_t Pipeline::in_flight() const {
  return ledger_.transactions();
}

}  // namespace pgbust
