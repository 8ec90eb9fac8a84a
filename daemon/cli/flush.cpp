// `pgbust flush`: a one-shot widening of the named rules (every key they could produce, as a
// pattern; their bumps; a publish marked "gap" and "flush"), applied to the configured Redis
// target through the same engine widening and Applier the daemon uses, with progress and a
// summary, on every configured target (each with its own key prefix). For recovery after events
// pgbust could not see (a restore, a FLUSHDB of the wrong database, a bulk load with the
// publication off).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/options.hpp"
#include "pgbust/cli/redis_options.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/pipeline/publish.hpp"
#include "pgbust/redis/redis.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust::cli {

namespace {

constexpr const char* kAbout =
    "pgbust flush: invalidate everything the named rules could have produced, once\n"
    "\n"
    "  pgbust flush --config /etc/pgbust/pgbust.yaml --table work_order_task\n"
    "\n"
    "For recovery after changes pgbust could not see (a restore, a bulk load with the\n"
    "publication off, a FLUSHDB of the wrong database): each selected rule widens as for a gap\n"
    "(every key as a pattern with each placeholder unknown, its bumps, its fallback), and each\n"
    "channel gets one PUBLISH (each stream one entry) marked \"gap\": true, \"flush\": true.\n"
    "Keys of other shapes are left alone. Without --rule or --table every rule is flushed, on\n"
    "every configured Redis "
    "target (each with its own key prefix). The plan is printed and confirmed (y) before\n"
    "anything is sent, unless --yes.\n"
    "Exit status: 0 when applied, 1 when refused, invalid or not applied within --timeout, 2\n"
    "for usage errors.";

// What the selected rules' widening asks for, per rule, deduplicated across rules.
struct Plan : rules::Sink {
  struct Step {
    const rules::Rule* rule;
    Batch batch;
  };
  std::vector<Step> steps;
  std::set<std::pair<rules::Action, std::string>> seen;
  std::map<std::string, PublishContent> publish;  // by channel
  std::map<std::string, PublishContent> stream;   // by stream key: one entry each (XADD)

  // The rule's message on its channel and its stream entry (those it has).
  template <typename F>
  void messages_of(const rules::Rule& r, F&& f) {
    if (!r.publish.empty()) f(publish[r.publish]);
    if (!r.stream.empty()) f(stream[r.stream]);
  }
  std::size_t message_count() const { return publish.size() + stream.size(); }

  void emit(const rules::Rule& r, rules::Action a, std::string_view key) override {
    if (steps.empty() || steps.back().rule != &r) steps.push_back({&r, {}});
    messages_of(r, [&](PublishContent& m) {
      auto& list = a == rules::Action::Delete          ? m.keys
                   : a == rules::Action::DeletePattern ? m.patterns
                                                       : m.revisions;
      if (std::find(list.begin(), list.end(), key) == list.end()) list.emplace_back(key);
    });
    if (!seen.insert({a, std::string(key)}).second) return;
    Batch& b = steps.back().batch;
    (a == rules::Action::Delete          ? b.deletes
     : a == rules::Action::DeletePattern ? b.patterns
                                         : b.bumps)
        .emplace_back(key);
  }
  void fired(const rules::Rule& r) override {
    if (steps.empty() || steps.back().rule != &r) steps.push_back({&r, {}});
    messages_of(r, [&](PublishContent& m) {
      m.tables.insert(r.schema + "." + r.table);
      m.gap = m.flush = true;
    });
  }
  void widened(const rules::Rule&, Unknown, std::string_view) override {}
};

std::string count(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string describe(const Batch& b) {
  std::vector<std::string> parts;
  if (!b.patterns.empty()) parts.push_back(count(b.patterns.size(), "pattern", "patterns"));
  if (!b.deletes.empty()) parts.push_back(count(b.deletes.size(), "key", "keys"));
  if (!b.bumps.empty()) parts.push_back(count(b.bumps.size(), "bump", "bumps"));
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out.empty() ? "nothing to delete" : out;
}

// Applies `plan` to `target`, one batch per rule then the messages, one after the other, with a
// progress line each and a summary (naming the target when `name_it`). When a batch is not
// applied within `timeout`: the target's last error (the target is closed either way).
std::optional<std::string> apply(redis::AnyTarget& target, Plan& plan, Clock::duration timeout,
                                 bool name_it) {
  std::vector<std::pair<std::string, Batch>> batches;
  for (auto& step : plan.steps)
    batches.emplace_back("rule " + step.rule->name, std::move(step.batch));
  Batch messages;
  for (const auto& [channel, m] : plan.publish)
    messages.publishes.emplace_back(channel, publish_message("flush", "", m));
  for (const auto& [key, m] : plan.stream)
    messages.streams.emplace_back(key, publish_message("flush", "", m));
  if (!messages.empty()) batches.emplace_back("publish", std::move(messages));

  Loop loop;
  target.attach(loop);
  const TimePoint start = Clock::now(), deadline = start + timeout;
  std::size_t next = 0, total_deleted = 0;
  bool busy = false;
  std::uint64_t deleted_before = 0;
  while (next < batches.size() || busy) {
    if (!busy) {
      auto& [label, batch] = batches[next];
      std::cout << "[" << next + 1 << "/" << batches.size() << "] " << label << ": "
                << (label == "publish" ? count(batch.publishes.size() + batch.streams.size(),
                                               "message", "messages")
                                       : describe(batch))
                << " ..." << std::flush;
      busy = true;
      deleted_before = target.stats().keys_deleted;
      target.apply(std::move(batch), [&] { busy = false; });
    }
    loop.run_once(std::chrono::milliseconds(200));
    if (!busy) {
      std::uint64_t deleted = target.stats().keys_deleted - deleted_before;
      total_deleted += deleted;
      std::cout << " done, " << count(deleted, "key", "keys") << " deleted\n";
      ++next;
    } else if (Clock::now() >= deadline) {
      std::cout << "\n";
      break;
    }
  }
  std::optional<std::string> failed;
  if (busy) failed = target.last_error();
  target.detach(loop);
  target.close();
  if (failed) return failed;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  std::cout << "flushed " << count(plan.steps.size(), "rule", "rules") << ": "
            << count(total_deleted, "key", "keys") << " deleted, "
            << count(target.stats().bumps, "counter", "counters") << " bumped, "
            << count(plan.message_count(), "message", "messages") << " published in " << ms << " ms"
            << (name_it ? " on " + target.describe() : "") << "\n";
  return std::nullopt;
}

}  // namespace

int flush(int argc, char** argv) {
  CommandLine cl("flush", kAbout);
  std::string config_file, timeout_text = "10m";
  std::vector<std::string> rule_names, tables;
  bool yes = false;
  // clang-format off
  cl.add()
    ("config,c", po::value(&config_file), "config file: its rules, redis target and key prefix")
    ("rule", po::value(&rule_names)->composing(), "flush this rule (repeatable)")
    ("table,t", po::value(&tables)->composing(), "flush every rule of this table (repeatable)")
    ("yes,y", po::bool_switch(&yes), "do not ask for confirmation")
    ("timeout", po::value(&timeout_text), "give up when Redis has not applied everything by "
                                          "then (default 10m)");
  // clang-format on
  if (auto exit = cl.parse(argc, argv)) return *exit;
  if (config_file.empty()) return cl.usage_error("give --config FILE");
  auto timeout = config::parse_duration(timeout_text);
  if (!timeout) return cl.usage_error("--timeout '" + timeout_text + "': expected e.g. 30s, 10m");

  config::Config cfg;
  try {
    cfg = config::load(config_file);
  } catch (const config::ConfigError& e) {
    for (const auto& p : e.problems()) std::cerr << p << "\n";
    return 1;
  } catch (const Error& e) {
    std::cerr << cl.prefix() << e.what() << "\n";
    return 1;
  }
  auto loaded = rules::RuleSet::load(cfg.rules);
  if (!loaded.rules) {
    for (const auto& e : loaded.errors) std::cerr << e.str() << "\n";
    std::cerr << cl.prefix() << "the rules are invalid (see pgbust check)\n";
    return 1;
  }
  const rules::RuleSet& set = *loaded.rules;

  // The selected rules, in file order.
  std::vector<const rules::Rule*> selected;
  std::vector<std::string> names, table_names;
  for (const auto& r : set.rules()) names.push_back(r.name);
  for (const auto& n : rule_names)
    if (std::find(names.begin(), names.end(), n) == names.end()) {
      std::string near = rules::suggest(n, names);
      std::cerr << cl.prefix() << "--rule: no rule named '" << n << "'"
                << (near.empty() ? "" : "; did you mean '" + near + "'?") << "\n";
      return 1;
    }
  std::vector<std::pair<std::string, std::string>> wanted_tables;
  for (const auto& t : tables) {
    std::string err;
    auto name = rules::parse_table_name(t, &err);
    if (!name) return cl.usage_error("--table '" + t + "': " + err);
    if (set.rules_for(name->schema, name->table).empty()) {
      std::string near = rules::suggest(name->schema + "." + name->table, set.tables());
      std::cerr << cl.prefix() << "--table: no rule names table " << name->schema << "."
                << name->table << (near.empty() ? "" : "; did you mean '" + near + "'?") << "\n";
      return 1;
    }
    wanted_tables.emplace_back(name->schema, name->table);
  }
  for (const auto& r : set.rules()) {
    bool all = rule_names.empty() && wanted_tables.empty();
    bool by_name = std::find(rule_names.begin(), rule_names.end(), r.name) != rule_names.end();
    bool by_table = std::find(wanted_tables.begin(), wanted_tables.end(),
                              std::make_pair(r.schema, r.table)) != wanted_tables.end();
    if (all || by_name || by_table) selected.push_back(&r);
  }

  // One plan per target: each renders the rules with its own key prefix.
  struct PerTarget {
    std::unique_ptr<redis::AnyTarget> target;  // a single node or a cluster
    Plan plan;
  };
  std::vector<PerTarget> targets;
  for (const auto& r : config::redis_targets(cfg)) {
    PerTarget t;
    try {
      t.target = redis::make_target(redis_options(r));
    } catch (const Error& e) {
      std::cerr << cl.prefix() << e.what() << "\n";
      return 1;
    }
    rules::Engine engine(loaded.rules, rules::EngineOptions{r.key_prefix});
    for (const rules::Rule* rule : selected) engine.widen_rule(*rule, Unknown::Explicit, t.plan);
    targets.push_back(std::move(t));
  }
  for (const auto& [target, plan] : targets) {
    std::cout << "pgbust flush: " << count(plan.steps.size(), "rule", "rules") << " on redis "
              << target->describe() << ":\n";
    for (const auto& step : plan.steps) {
      std::cout << "  rule " << step.rule->name << " (" << step.rule->schema << "."
                << step.rule->table << "):\n";
      for (const auto& k : step.batch.deletes) std::cout << "    UNLINK " << k << "\n";
      for (const auto& k : step.batch.patterns) std::cout << "    SCAN-DELETE " << k << "\n";
      for (const auto& k : step.batch.bumps) std::cout << "    INCR " << k << "\n";
    }
    for (const auto& [channel, m] : plan.publish) std::cout << "  PUBLISH " << channel << "\n";
    for (const auto& [key, m] : plan.stream) std::cout << "  XADD " << key << "\n";
  }
  if (!yes) {
    std::cout << "Apply? [y/N] " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      std::cerr << cl.prefix() << "not confirmed; nothing sent (--yes skips the question)\n";
      return 1;
    }
  }

  // The progress lines say what happens; the target's log only what goes wrong.
  spdlog::set_level(spdlog::level::warn);
  // Target after target in config order, stopping at the first that is not applied within
  // --timeout (named, with its error): exit 1 then says the flush is not complete.
  for (auto& [target, plan] : targets) {
    if (targets.size() > 1) std::cout << "redis " << target->describe() << ":\n";
    if (auto error = apply(*target, plan, *timeout, targets.size() > 1)) {
      std::cerr << cl.prefix() << "not applied within " << timeout_text << " on "
                << target->describe() << ": " << *error << "\n";
      return 1;
    }
  }
  return 0;
}

}  // namespace pgbust::cli
