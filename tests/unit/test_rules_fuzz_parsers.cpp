// Randomized inputs for the template, condition, JSON and rule-file parsers: thousands of
// random and mutated strings must each give a result or a clean error (no crash, no hang,
// error offsets inside the input). Seeds are fixed so a failure reproduces.
#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../../rules/condition.hpp"
#include "../../rules/template.hpp"
#include "pgbust/core/json.hpp"
#include "pgbust/rules/rules.hpp"

using namespace pgbust::rules::detail;

namespace {

class Gen {
 public:
  explicit Gen(std::uint32_t seed) : rng_(seed) {}
  std::size_t below(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }

  // A string built from `pieces` (tokens that matter to the parser) and random bytes.
  std::string random(const std::vector<std::string>& pieces, std::size_t max_parts) {
    std::string s;
    std::size_t n = below(max_parts + 1);
    for (std::size_t i = 0; i < n; ++i) {
      if (below(8) == 0)
        s.push_back(static_cast<char>(below(256)));
      else
        s += pieces[below(pieces.size())];
    }
    return s;
  }

  // `s` with a few random insertions, deletions, replacements or duplications.
  std::string mutate(std::string s, const std::vector<std::string>& pieces) {
    std::size_t n = 1 + below(4);
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t at = s.empty() ? 0 : below(s.size() + 1);
      switch (below(4)) {
        case 0:
          s.insert(at, pieces[below(pieces.size())]);
          break;
        case 1:
          if (!s.empty() && at < s.size()) s.erase(at, 1 + below(3));
          break;
        case 2:
          if (!s.empty() && at < s.size()) s[at] = static_cast<char>(below(256));
          break;
        default: {
          std::size_t len = s.empty() ? 0 : below(s.size() - std::min(at, s.size()) + 1);
          s.insert(at, s.substr(at, len));
        }
      }
    }
    return s;
  }

 private:
  std::mt19937 rng_;
};

class AnyValues : public ValueSource {
 public:
  explicit AnyValues(std::size_t seed) : seed_(seed) {}
  CondValue get(const ColumnRef& r) const override {
    switch ((seed_ + static_cast<std::size_t>(r.slot) * 7 + static_cast<std::size_t>(r.image)) %
            5) {
      case 0:
        return {CondValue::State::Unknown, {}};
      case 1:
        return {CondValue::State::Null, {}};
      case 2:
        return {CondValue::State::Text, "t"};
      case 3:
        return {CondValue::State::Text, "42.5"};
      default:
        return {CondValue::State::Text, "it's"};
    }
  }

 private:
  std::size_t seed_;
};

}  // namespace

TEST_CASE("fuzz: templates") {
  const std::vector<std::string> pieces = {
      "${",     "}",       "$",      "$$",   "|",     ":",      ".",          "new",
      "old",    "new.",    "old.",   "id",   "table", "schema", "op",         "\"",
      "\"\"",   "lower",   "upper",  "trim", "date",  "month",  "week_start", "md5",
      "sha256", "default", "pybool", "8",    "99",    "0",      " ",          "k:",
      "*",      "?",       "[",      "]",    "\\",    "-",      "_"};
  const std::vector<std::string> seeds = {
      "task_stats:${assigned_department_id}", "${new.a|lower|md5:8}-${old.b|week_start}",
      "${table}:${schema}:${op}:${\"Col\"|default:x|upper}", "price$$:${id|sha256:12}",
      "w:${due|date|week_start}:${x|pybool}"};
  Gen g(20240601);
  int parsed = 0, rejected = 0;
  const std::string_view inputs[] = {"2024-01-07", "", "t", "infinity", "a*b"};
  for (int i = 0; i < 20000; ++i) {
    std::string text =
        (i % 2 == 0) ? g.random(pieces, 12) : g.mutate(seeds[g.below(seeds.size())], pieces);
    CAPTURE(text);
    Slots slots;
    Template t;
    auto err = parse_template(text, slots, t);
    if (err) {
      ++rejected;
      REQUIRE(err->offset <= text.size());
      REQUIRE(!err->message.empty());
      continue;
    }
    ++parsed;
    for (const auto& p : t.parts) {
      if (!p.placeholder) continue;
      if (p.meta == Meta::None) REQUIRE(static_cast<std::size_t>(p.ref.slot) < slots.names.size());
      std::string out, scratch;
      for (std::string_view v : inputs) apply_filters(p.filters, &v, out, scratch);
      apply_filters(p.filters, nullptr, out, scratch);
    }
  }
  MESSAGE("templates: " << parsed << " parsed, " << rejected << " rejected");
  CHECK(parsed > 1000);
  CHECK(rejected > 1000);
}

TEST_CASE("fuzz: conditions") {
  const std::vector<std::string> pieces = {
      "(",     ")",     " ",   "AND",   "OR",    "NOT", "IN", "IS",  "NULL",    "TRUE",
      "FALSE", "=",     "<>",  "!=",    "<",     "<=",  ">",  ">=",  "!",       ",",
      ".",     "new",   "old", "new.x", "old.y", "x",   "y",  "'a'", "'it''s'", "'",
      "\"",    "\"Q\"", "1",   "-2.5",  "1e3",   "1e",  ".5", "+",   "-",       "#"};
  const std::vector<std::string> seeds = {
      "new.status <> 'draft'", "x IN (1, 2, NULL) AND NOT (y IS NULL OR old.y = 'a')",
      "a = 1 OR b = 1 AND c IS NOT TRUE", "\"Weird\" NOT IN ('x', 'y')", "((x))"};
  Gen g(7);
  int parsed = 0, rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text =
        (i % 2 == 0) ? g.random(pieces, 16) : g.mutate(seeds[g.below(seeds.size())], pieces);
    CAPTURE(text);
    Slots slots;
    Condition c;
    auto err = parse_condition(text, slots, c);
    if (err) {
      ++rejected;
      REQUIRE(err->offset <= text.size());
      REQUIRE(!err->message.empty());
      continue;
    }
    ++parsed;
    REQUIRE(c.root >= 0);
    REQUIRE(static_cast<std::size_t>(c.root) < c.nodes.size());
    std::uint8_t r = evaluate(c, AnyValues(static_cast<std::size_t>(i)));
    REQUIRE(r != 0);
    REQUIRE(r <= kAny);
  }
  MESSAGE("conditions: " << parsed << " parsed, " << rejected << " rejected");
  CHECK(parsed > 1000);
  CHECK(rejected > 1000);
}

TEST_CASE("fuzz: JSON") {
  const std::vector<std::string> pieces = {
      "{",    "}",       "[",       "]",    ",",  ":",        "\"",   "\"a\"", "\\",
      "\\u",  "\\ud83d", "\\ude00", "0041", "1",  "-",        "0",    ".5",    "e+",
      "true", "false",   "null",    " ",    "\n", "\xc3\xa9", "\xff", "tru"};
  const std::vector<std::string> seeds = {
      R"({"id": 5, "name": "a\"b", "tags": [1, 2.5e3, true, null], "x": {"y": "\u00e9\ud83d\ude00"}})",
      R"([[], {}, "", -0, 1E-2])"};
  Gen g(99);
  int parsed = 0, rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text =
        (i % 2 == 0) ? g.random(pieces, 14) : g.mutate(seeds[g.below(seeds.size())], pieces);
    CAPTURE(text);
    try {
      auto v = pgbust::json::parse(text);
      ++parsed;
      // Any string we read quotes back to valid JSON that reads the same.
      if (v.is_string())
        REQUIRE(pgbust::json::parse(pgbust::json::quote(v.text())).text() == v.text());
    } catch (const pgbust::json::ParseError& e) {
      ++rejected;
      REQUIRE(e.offset() <= text.size());
      REQUIRE(e.line() >= 1);
      REQUIRE(e.column() >= 1);
    }
  }
  MESSAGE("json: " << parsed << " parsed, " << rejected << " rejected");
  CHECK(parsed > 100);
  CHECK(rejected > 1000);
}

TEST_CASE("fuzz: rule files") {
  const std::vector<std::string> pieces = {"\n",      "  ",       "    ",
                                           "- ",      ": ",       "name",
                                           "table",   "on",       "changed",
                                           "when",    "delete",   "delete_pattern",
                                           "bump",    "publish",  "redelete_after",
                                           "null_as", "fallback", "version",
                                           "rules",   "[",        "]",
                                           "{",       "}",        "\"",
                                           "'",       "${id}",    "${x|md5:8}",
                                           "500ms",   "insert",   "#",
                                           "&a",      "*a",       "!!str",
                                           "|",       ">",        "~",
                                           "null",    "1"};
  const std::string seed = R"(version: 1
rules:
  - name: task-stats
    table: public.work_order_task
    on: [insert, update, delete]
    changed: [status]
    when: "new.status <> 'draft'"
    delete: ["task_stats:${assigned_department_id}"]
    delete_pattern: "dashboard:*"
    bump: "rev:dept:${assigned_department_id}"
    publish: chan
    redelete_after: 500ms
    null_as: None
    fallback: {bump: "rev:t"}
)";
  Gen g(31337);
  int loaded = 0, rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text = (i % 3 == 0) ? g.random(pieces, 30) : g.mutate(seed, pieces);
    CAPTURE(text);
    auto r = pgbust::rules::RuleSet::parse(text, "fuzz.yaml");
    if (r.rules) {
      ++loaded;
      REQUIRE(r.errors.empty());
    } else {
      ++rejected;
      REQUIRE(!r.errors.empty());
      for (const auto& e : r.errors) {
        REQUIRE(!e.message.empty());
        REQUIRE(e.line >= 0);
      }
    }
  }
  MESSAGE("rule files: " << loaded << " loaded, " << rejected << " rejected");
  CHECK(loaded > 50);
  CHECK(rejected > 500);
}

TEST_CASE("fuzz: time zones (POSIX TZ rules, TZif bytes, timestamps in a zone)") {
  Gen g(20261206);
  const std::vector<std::string> pieces = {"CET", "-1", "CEST", ",", "M3.5.0", "M10.5.0", "/3",
                                           "J60", "59", "/26",  "<", ">",      "+",       "-",
                                           ":",   "30", "167",  "M", ".",      "0",       "5"};
  const std::vector<std::string> seeds = {"CET-1CEST,M3.5.0,M10.5.0/3", "EST5EDT,M3.2.0,M11.1.0",
                                          "<+0530>-5:30", "IST-2IDT,M3.4.4/26,M10.5.0",
                                          "<-02>2<-01>,M3.5.0/-1,M10.5.0/0"};
  int rules_ok = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text =
        (i % 2 == 0) ? g.random(pieces, 10) : g.mutate(seeds[g.below(seeds.size())], pieces);
    CAPTURE(text);
    std::string error;
    auto tz = parse_posix_tz(text, &error);
    if (!tz) {
      REQUIRE(!error.empty());
      continue;
    }
    ++rules_ok;
    for (std::int64_t t : {-4102444800LL, 0LL, 1711846800LL, 4102444800LL, 32503680000LL})
      tz->offset_at(t);
  }
  CHECK(rules_ok > 300);

  std::string berlin;
  {
    ZoneCache cache;
    std::ifstream in(cache.dir() + "/Europe/Berlin", std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    berlin = bytes.str();
  }
  REQUIRE(berlin.size() > 44);
  int zones_ok = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = berlin;
    for (std::size_t k = 1 + g.below(6); k > 0; --k) {
      std::size_t at = g.below(bytes.size());
      if (g.below(5) == 0)
        bytes.erase(at, 1 + g.below(8));
      else
        bytes[at] = static_cast<char>(g.below(256));
    }
    std::string error;
    auto z = Zone::from_tzif("fuzz", bytes, error);
    if (!z) {
      REQUIRE(!error.empty());
      continue;
    }
    ++zones_ok;
    for (std::int64_t t : {-4102444800LL, 0LL, 1711846800LL, 4102444800LL, 32503680000LL})
      z->offset_at(t);
  }
  CHECK(zones_ok > 100);

  Slots slots;
  Template t;
  REQUIRE(!parse_template("${x|tz:Europe/Berlin}${x|week_start:Asia/Kolkata}", slots, t));
  const std::vector<std::string> stamp_pieces = {
      "2024", "-",  "01", "12",        " ",    ":",  "00", "59", "+",       ".",
      "5",    "BC", "T",  "999999999", "0001", "24", "60", "99", "infinity"};
  for (int i = 0; i < 20000; ++i) {
    std::string v = (i % 2 == 0) ? g.random(stamp_pieces, 12)
                                 : g.mutate("2024-03-31 00:59:59.123456+05:30", stamp_pieces);
    CAPTURE(v);
    std::string_view sv = v;
    std::string out, scratch;
    for (const auto& p : t.parts) {
      auto r = apply_filters(p.filters, &sv, out, scratch);
      if (r == FilterResult::Failed) REQUIRE(out.rfind("filter ", 0) == 0);
    }
  }
}
