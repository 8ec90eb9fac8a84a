// The rule engine's public API: load and validate YAML rules, then turn a ChangeEvent into
// the Redis actions (delete, pattern delete, bump, publish) the rules ask for.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/core/change.hpp"
#include "pgbust/core/glob.hpp"

namespace pgbust::rules {

// One problem in a rule file, printed GCC style: "FILE:LINE:COL: error: MESSAGE"
// ("warning:" for warnings; "FILE: error: ..." when there is no position).
struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when the problem is not at a position (e.g. unreadable file)
  int column = 0;  // 1-based
  std::string message;
  bool warning = false;
  std::string str() const;
};

enum class Action : std::uint8_t { Delete, DeletePattern, Bump };
std::string_view to_string(Action a);

namespace detail {
struct RuleImpl;  // compiled templates, conditions, column references
}

// A validated rule. The public fields are what the daemon, logs and metrics need.
struct Rule {
  std::string name;
  std::string schema;  // "public" when the file did not say
  std::string table;
  std::string publish;  // channel, empty when the rule does not publish
  // Stream the same message is added to (XADD, one entry per transaction); empty: none.
  std::string stream;
  std::chrono::milliseconds redelete_after{0};
  // `stable:` the DBA's assertion that these columns never change after insert: where an
  // update's old value is not known (REPLICA IDENTITY DEFAULT or USING INDEX, polling) it is
  // taken to equal the new one instead of widening. `check --db` looks for a trigger that
  // enforces it.
  std::vector<std::string> stable;
  std::string file;
  int line = 0;
  int column = 0;  // where the rule's mapping starts, 1-based
  std::shared_ptr<const detail::RuleImpl> impl;
};

// A rule that needs an old value the table's replica identity may not provide.
struct OldValueNeed {
  const Rule* rule;
  std::string column;
  // True when a key template needs it (the rule widens without it); false when only `when`
  // or `changed` read it (the rule then fires whenever it cannot tell).
  bool widens = false;
};

// What REPLICA IDENTITY DEFAULT costs a rule: with it, the old row of an update or delete
// carries only the replica identity (primary key) columns, so keys built from other old
// values cannot be computed exactly.
struct IdentityCost {
  std::vector<std::string> columns;   // old values the rule's keys need, not in the key
  std::vector<std::string> patterns;  // the pattern deletes that replace those keys, with
                                      // '*' for the unknown values (other placeholders as written)
  bool fallback = false;              // the rule runs its fallback instead
  bool empty() const { return columns.empty(); }
};
// `key_columns`: the table's replica identity columns, when known (empty: assume none).
// `for_update`: an update's cost, where the rule's stable columns are known too (a delete has
// no new row to take them from).
IdentityCost default_identity_cost(const Rule& rule,
                                   const std::vector<std::string>& key_columns = {},
                                   bool for_update = false);

// Whether the rule fires on `op` (its `on`).
bool fires_on(const Rule& rule, Op op);

class RuleSet;

// Rule files together may hold at most this many bytes (about 15,000 typical rules): loading
// is bounded in time and memory, and a file that is too large fails with this limit named.
constexpr std::size_t kMaxRulesBytes = 2u << 20;
// A key template may be at most this long.
constexpr std::size_t kMaxTemplateBytes = 2048;

struct LoadResult {
  std::shared_ptr<const RuleSet> rules;  // null when errors is not empty
  std::vector<Diagnostic> errors;        // every error found, not just the first
  std::vector<Diagnostic> warnings;      // valid but probably not what was meant
};

// An immutable, validated set of rules.
class RuleSet {
 public:
  // A YAML file, or a directory whose *.yaml / *.yml files are loaded in name order.
  static LoadResult load(const std::filesystem::path& path);
  // Rules from text; `file` is the name used in diagnostics.
  static LoadResult parse(std::string_view yaml, const std::string& file);

  const std::vector<Rule>& rules() const { return rules_; }
  // "schema.table" of every table some rule names, sorted, unique.
  std::vector<std::string> tables() const;
  // Every column of `schema.table` the rules read (templates, when, changed), sorted, unique.
  std::vector<std::string> columns_needed(std::string_view schema, std::string_view table) const;
  // Old values the rules of that table need (for `check --db` against REPLICA IDENTITY).
  std::vector<OldValueNeed> old_values_needed(std::string_view schema,
                                              std::string_view table) const;
  // Short stable content hash (hex) of the rule set, for status lines and reload logs.
  // Comments, formatting and key order in the YAML do not change it.
  const std::string& hash() const { return hash_; }
  // The rules of `schema.table` in file order (empty when none).
  std::vector<const Rule*> rules_for(std::string_view schema, std::string_view table) const;

  // Implementation detail, public for the loader.
  std::vector<Rule> rules_;
  std::string hash_;
};

// Receives what the rules ask for. Keys arrive fully rendered: key prefix applied, and in
// patterns every row value glob-escaped while the template's own wildcards are kept.
// Per event and rule the keys are deduplicated (an update that does not move a row renders
// each key once).
//
// Widening (promise 3), when a value a template needs is unknown:
// - the rule's `fallback` actions run instead of that key, if the rule has a fallback;
// - otherwise a delete or delete_pattern template becomes a pattern delete with `*` for the
//   unknown value (the template's literal text and every known value glob-escaped), and a
//   bump template becomes a pattern delete of the matching counters (deleting a counter is
//   what eviction does, and bumps are seeded so a re-created counter never repeats an old
//   value). `check` warns about rules that can widen this way.
// A NULL value skips the key (unless the rule has `null_as` or the placeholder a `default`
// filter); so does `${new.x}` on a delete and `${old.x}` on an insert (there is no such row).
class Sink {
 public:
  virtual ~Sink() = default;
  // The rule matched the event (op, changed, when); called before its emit()/widened() calls.
  // Rules that only `publish` are seen here. Default: nothing.
  virtual void fired(const Rule& rule) { (void)rule; }
  virtual void emit(const Rule& rule, Action action, std::string_view key) = 0;
  // A bump whose key could not be computed exactly: `pattern` covers every counter it may be
  // and is deleted like a delete_pattern (and before the transaction's bumps, so it never
  // removes the counter the same transaction bumps). A counter has no stale-set race, so
  // unlike a delete it is never deleted again after redelete_after: that would remove
  // counters bumped since. Default: emit(rule, DeletePattern, pattern).
  virtual void emit_widened_bump(const Rule& rule, std::string_view pattern) {
    emit(rule, Action::DeletePattern, pattern);
  }
  // The rule could not compute a key exactly and widened (promise 3). `detail` names the
  // column(s), e.g. "old.group_id unknown (REPLICA IDENTITY DEFAULT)".
  virtual void widened(const Rule& rule, Unknown why, std::string_view detail) = 0;
};

struct EngineOptions {
  std::string key_prefix;  // applied to every key and pattern (Django: ":1:")
};

// Matches changes against a RuleSet. Binding a table layout to its rules is cached inside,
// keyed by TableInfo address and generation, so a change on a table with no rules costs one
// hash lookup. Not thread-safe; one Engine per rule set per thread.
class Engine {
 public:
  Engine(std::shared_ptr<const RuleSet> rules, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const RuleSet& rules() const { return *rules_; }
  const EngineOptions& options() const { return options_; }

  // True when some rule names this table.
  bool has_rules(const TableInfo& table);
  // Runs every rule of the event's table; returns the number of rules that fired.
  int evaluate(const ChangeEvent& event, Sink& sink);
  // Runs every rule of `schema.table` as if every row value were unknown, for any op
  // (NOTIFY gap, oversized payload, polled delete, too many keys).
  int widen_table(std::string_view schema, std::string_view table, Unknown why, Sink& sink);
  // The same for one rule.
  void widen_rule(const Rule& rule, Unknown why, Sink& sink);

 private:
  struct Impl;
  std::shared_ptr<const RuleSet> rules_;
  EngineOptions options_;
  std::unique_ptr<Impl> impl_;
};

// A table name as rules spell it: "schema.table" or "table" (schema public); unquoted names
// fold to lower case, "Quoted" names are exact. nullopt (and `error` set) when malformed.
struct TableName {
  std::string schema, table;
};
std::optional<TableName> parse_table_name(std::string_view text, std::string* error = nullptr);

// The candidate closest to `word` (a typo away), or "" when none is close.
std::string suggest(std::string_view word, const std::vector<std::string>& candidates);

// For rule tests that write values as a session with SET TimeZone = `zone` prints them:
// check_time_zone() says whether `zone` is a tz database zone (`error` set when not);
// timestamptz_as_utc() gives a timestamptz text (YYYY-MM-DD HH:MM:SS[.f]+HH[:MM[:SS]]) as
// pgbust's sessions print it (TimeZone=UTC), or nullopt: with `error` empty for any other
// text (a date, a timestamp without time zone, not a time: left as written), with `error` set
// when the zone is unknown or the value's offset is not the zone's at that instant.
bool check_time_zone(std::string_view zone, std::string& error);
std::optional<std::string> timestamptz_as_utc(std::string_view value, std::string_view zone,
                                              std::string& error);

// Glob-escapes `*?[]\` so a value matches only itself in SCAN MATCH.
std::string glob_escape(std::string_view value);
// Appends glob_escape(value) to `out`.
void append_glob_escaped(std::string& out, std::string_view value);
// Redis' glob matching (stringmatchlen semantics), for tests and `explain`; lives in core.
using pgbust::glob_match;

}  // namespace pgbust::rules
