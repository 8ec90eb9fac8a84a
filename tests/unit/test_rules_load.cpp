// Loading and validating rule files: every error with its line and column, all at once;
// warnings; directories; the content hash; what the daemon and `check` query.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_rules_support.hpp"
#include "test_support.hpp"

using namespace pgbust;
using pgbust::rules::RuleSet;

namespace {

// "LINE:COL: MESSAGE-FRAGMENT"
struct Expect {
  int line, column;
  std::string fragment;
};

void check_errors(const std::string& yaml, const std::vector<Expect>& expected) {
  auto r = RuleSet::parse(yaml, "r.yaml");
  CHECK(!r.rules);
  std::string all;
  for (const auto& e : r.errors) all += e.str() + "\n";
  CAPTURE(all);
  REQUIRE(r.errors.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CHECK(r.errors[i].file == "r.yaml");
    CHECK(r.errors[i].line == expected[i].line);
    CHECK(r.errors[i].column == expected[i].column);
    CHECK_MESSAGE(r.errors[i].message.find(expected[i].fragment) != std::string::npos,
                  r.errors[i].message);
  }
}

std::string rule_file(const std::string& body) {
  return "version: 1\nrules:\n  - name: r\n    table: t\n" + body;
}

}  // namespace

TEST_CASE("the DESIGN.md example is valid") {
  auto r = RuleSet::parse(R"(version: 1
rules:
  - name: task-stats                 # unique; appears in logs, metrics, explain
    table: public.work_order_task    # schema optional (default public)
    on: [insert, update, delete]     # default: all four incl. truncate
    changed: [status, assigned_department_id]   # updates fire only if one changed
    when: "new.status <> 'draft'"    # optional SQL-like condition over old./new. columns
    delete:                          # exact keys (UNLINK)
      - "task_stats:${assigned_department_id}"
      - "operator_stats:${assigned_operator_id}"
    delete_pattern:                  # SCAN MATCH + UNLINK, values glob-escaped
      - "dashboard:*"
    bump:                            # revision counters (INCR, seeded so an evicted
      - "rev:dept:${assigned_department_id}"   # counter never repeats an old value)
    publish: cache-invalidation      # one message per transaction listing what was invalidated
    redelete_after: 500ms            # optional second delete for the stale-set race
)",
                          "design.yaml");
  for (const auto& e : r.errors) MESSAGE(e.str());
  REQUIRE(r.errors.empty());
  REQUIRE(r.rules);
  const auto& rule = r.rules->rules().at(0);
  CHECK(rule.name == "task-stats");
  CHECK(rule.schema == "public");
  CHECK(rule.table == "work_order_task");
  CHECK(rule.publish == "cache-invalidation");
  CHECK(rule.redelete_after == std::chrono::milliseconds(500));
  CHECK(rule.file == "design.yaml");
  CHECK(rule.line == 3);
  CHECK(r.rules->tables() == std::vector<std::string>{"public.work_order_task"});
  CHECK(r.rules->columns_needed("public", "work_order_task") ==
        std::vector<std::string>{"assigned_department_id", "assigned_operator_id", "status"});
  CHECK(r.rules->columns_needed("public", "other").empty());
  // Warnings: `when` reads only new.* although the rule runs on delete; the bump can widen.
  REQUIRE(r.warnings.size() == 2);
  CHECK(r.warnings[0].warning);
  CHECK(r.warnings[0].str() ==
        "design.yaml:3:5: warning: rule 'task-stats': 'when' reads only new.* values, which a "
        "delete does not have, so the rule fires on every delete; use unqualified columns (the old "
        "row on delete) to filter deletes too");
  CHECK(r.warnings[1].message.find("bump 'rev:dept:${assigned_department_id}' reads row values") !=
        std::string::npos);
  CHECK(r.rules->hash().size() == 8);

  // Old values: templates (widen) and changed/when (fire when unknown).
  auto needs = r.rules->old_values_needed("public", "work_order_task");
  std::vector<std::string> got;
  for (const auto& n : needs) got.push_back(n.column + (n.widens ? " widens" : ""));
  CHECK(got == std::vector<std::string>{"assigned_department_id widens",
                                        "assigned_operator_id widens", "status"});
}

TEST_CASE("validation errors: position and message, all at once") {
  struct Case {
    std::string name;
    std::string yaml;
    std::vector<Expect> errors;
  };
  const std::vector<Case> cases = {
      {"unknown key with suggestion",
       rule_file("    delet: \"k\"\n"),
       {{5, 5, "unknown key 'delet' in a rule; did you mean 'delete'?"},
        {3, 5, "rule has no action"}}},
      {"unknown top-level key",
       "version: 1\nrule: []\n",
       {{2, 1, "unknown key 'rule' in the rule file; did you mean 'rules'?"},
        {1, 1, "missing 'rules:'"}}},
      {"missing version", "rules: []\n", {{1, 1, "missing 'version: 1'"}}},
      {"wrong version",
       "version: 2\nrules: []\n",
       {{1, 10, "unsupported rule language version '2'"}}},
      {"rules not a list",
       "version: 1\nrules: {a: 1}\n",
       {{2, 8, "rules: expected a list of rules, found a mapping"}}},
      {"rule not a mapping",
       "version: 1\nrules:\n  - just-a-string\n",
       {{3, 5, "expected a rule"}}},
      {"missing name and table",
       "version: 1\nrules:\n  - delete: k\n",
       {{3, 5, "rule has no 'name'"}, {3, 5, "rule has no 'table'"}}},
      {"wrong types",
       rule_file("    delete: {a: 1}\n    when: [x]\n    publish: [a]\n"),
       {{6, 11, "when: expected a condition string"},
        {5, 13, "delete: expected a key template string or a list of them, found a mapping"},
        {7, 14, "publish: expected a channel name, found a list"}}},
      {"list items of the wrong type",
       rule_file("    delete:\n      - k\n      - [x]\n"),
       {{7, 9, "delete: expected a key template string, found a list"}}},
      {"empty list", rule_file("    delete: []\n"), {{5, 13, "delete: empty list"}}},
      {"unknown filter, column inside the string",
       rule_file("    delete: \"k:${id|lowr}\"\n"),
       {{5, 21, "delete: unknown filter 'lowr'; did you mean 'lower'?"}}},
      {"unknown filter in a plain scalar",
       rule_file("    delete: k:${id|uper}\n"),
       {{5, 20, "unknown filter 'uper'; did you mean 'upper'?"}}},
      {"unknown filter in a list item",
       rule_file("    bump:\n      - 'rev:${id|md5:99}'\n"),
       {{6, 23, "bump: md5 expects a number of hex digits from 1 to 32, got '99'"}}},
      {"single-quoted escapes are followed",
       rule_file("    delete: 'it''s:${id|nope}'\n"),
       {{5, 25, "unknown filter 'nope'"}}},
      {"unterminated placeholder",
       rule_file("    delete: \"k:${id\"\n"),
       {{5, 16, "unterminated placeholder"}}},
      {"malformed condition",
       rule_file("    when: \"new.status <> 'draft' AND\"\n    delete: k\n"),
       {{5, 37, "when: expected a column, string, number"}}},
      {"condition garbage",
       rule_file("    when: status === 1\n    delete: k\n"),
       {{5, 19, "when: expected a column, string, number, TRUE, FALSE or NULL, found '='"}}},
      {"unknown op",
       rule_file("    on: [insert, updte]\n    delete: k\n"),
       {{5, 18, "on: unknown operation 'updte'; did you mean 'update'?"}}},
      {"changed without update",
       rule_file("    on: [insert]\n    changed: [status]\n    delete: k\n"),
       {{6, 5, "changed: only applies to updates"}}},
      {"changed: bad column",
       rule_file("    changed: [\"a b\"]\n    delete: k\n"),
       {{5, 17, "changed: unexpected ' ' in name"}}},
      {"no action",
       rule_file("    on: [insert]\n"),
       {{3, 5, "rule has no action; expected at least one of delete"}}},
      {"bad durations",
       rule_file("    delete: k\n    redelete_after: 500\n"),
       {{6, 21, "redelete_after: '500' is not a duration"}}},
      {"too long",
       rule_file("    delete: k\n    redelete_after: 2h\n"),
       {{6, 21, "is not a duration"}}},
      {"null_as: null",
       rule_file("    delete: k\n    null_as: null\n"),
       {{6, 14, "null_as: expected the text the application writes for NULL"}}},
      {"fallback with an unknown key",
       rule_file("    delete: \"k:${g}\"\n    fallback:\n      publish: x\n"),
       {{7, 7, "unknown key 'publish' in fallback; expected delete, delete_pattern or bump"},
        {7, 7, "fallback: no action"}}},
      {"fallback not a mapping",
       rule_file("    delete: \"k:${g}\"\n    fallback: \"rev:t\"\n"),
       {{6, 15, "fallback: expected a mapping"}}},
      {"duplicate key",
       rule_file("    delete: a\n    delete: b\n"),
       {{6, 5, "duplicate key 'delete' in a rule; first given at line 5"}}},
      {"old.* on insert only",
       rule_file("    on: insert\n    delete: \"k:${old.g}\"\n"),
       {{3, 5, "reads old.* values but only runs on insert"}}},
      {"new.* on delete only",
       rule_file("    on: [delete]\n    when: \"new.x = 1\"\n    delete: k\n"),
       {{3, 5, "reads new.* values but only runs on delete"}}},
      {"bad table name",
       "version: 1\nrules:\n  - name: r\n    table: a.b.c\n    delete: k\n",
       {{4, 15, "table: unexpected '.' in table name"}}},
      {"empty name",
       "version: 1\nrules:\n  - name: ''\n    table: t\n    delete: k\n",
       {{3, 11, "name: empty rule name"}}},
      {"duplicate rule names",
       "version: 1\nrules:\n  - name: r\n    table: t\n    delete: k\n"
       "  - name: r\n    table: u\n    delete: k\n",
       {{6, 5, "duplicate rule name 'r'; first defined at r.yaml:3:5"}}},
      {"YAML syntax error: a tab",
       "version: 1\n\trules: []\n",
       {{2, 1, "YAML syntax error: illegal tab when looking for indentation"}}},
      {"YAML syntax error: an undefined alias",
       "version: 1\nrules: *x\n",
       {{2, 8, "YAML syntax error: the referenced anchor is not defined"}}},
      {"YAML syntax error: unterminated flow list",
       "version: 1\nrules: [a, b\n",
       {{3, 1, "YAML syntax error: end of sequence flow not found"}}},
      {"YAML syntax error: a key where a value goes",
       "version: 1\nrules:\n  - name: r\n    table: t\n  delete: x\n",
       {{5, 3, "YAML syntax error"}}},
      {"stream: not a name",
       rule_file("    stream: [a, b]\n"),
       {{5, 13, "stream: expected a stream key name"}}},
      {"stream: empty",
       rule_file("    delete: k\n    stream: ''\n"),
       {{6, 13, "stream: empty stream name"}}},
      {"stream: misspelled",
       rule_file("    delete: k\n    strem: s\n"),
       {{6, 5, "unknown key 'strem' in a rule; did you mean 'stream'?"}}},
      {"top level is a list",
       "- a\n",
       {{1, 1, "expected a mapping with 'version: 1' and 'rules:', found a list"}}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    check_errors(c.yaml, c.errors);
  }
}

TEST_CASE("an empty file and an empty rule list") {
  auto r = RuleSet::parse("", "empty.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].str() ==
        "empty.yaml: error: empty rule file; expected 'version: 1' and 'rules:'");
  r = RuleSet::parse("version: 1\nrules: []\n", "none.yaml");
  CHECK(r.errors.empty());
  REQUIRE(r.rules);
  CHECK(r.rules->rules().empty());
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0].str() ==
        "none.yaml:2:8: warning: rules: empty list; this file invalidates nothing");
}

TEST_CASE("stream: an action of its own, with or without publish; part of the hash") {
  auto r = RuleSet::parse(rule_file("    stream: inval:t\n"), "r.yaml");
  REQUIRE(r.errors.empty());
  CHECK(r.rules->rules()[0].stream == "inval:t");
  CHECK(r.rules->rules()[0].publish.empty());
  auto other = RuleSet::parse(rule_file("    stream: inval:u\n"), "r.yaml");
  REQUIRE(other.errors.empty());
  CHECK(r.rules->hash() != other.rules->hash());
}

TEST_CASE("defaults and accepted spellings") {
  auto r = RuleSet::parse(R"(version: 1
rules:
  - name: a
    table: t
    on: UPDATE
    delete: k
    redelete_after: 2s
  - name: b
    table: t
    on: [truncate]
    publish: chan
    redelete_after: 1m
)",
                          "ok.yaml");
  REQUIRE(r.errors.empty());
  CHECK(r.rules->rules()[0].redelete_after == std::chrono::milliseconds(2000));
  CHECK(r.rules->rules()[1].redelete_after == std::chrono::milliseconds(60000));
  CHECK(r.rules->rules()[1].publish == "chan");
  CHECK(r.rules->rules()[0].stream.empty());
  CHECK(r.rules->rules()[0].schema == "public");
}

TEST_CASE("warnings") {
  auto r = RuleSet::parse(
      rule_file("    when: \"x = NULL\"\n    delete: k\n    fallback:\n      delete: j\n"),
      "w.yaml");
  REQUIRE(r.errors.empty());
  std::vector<std::string> got;
  for (const auto& w : r.warnings) got.push_back(w.str());
  REQUIRE(got.size() == 2);
  CHECK(got[0] ==
        "w.yaml:5:11: warning: when: a comparison with NULL is never true (SQL); use IS NULL or IS "
        "NOT NULL");
  CHECK(got[1] ==
        "w.yaml:3:5: warning: rule 'r': 'fallback' never runs: no key template of this rule reads "
        "a row value");
}

TEST_CASE("hash: stable across formatting, changes with content") {
  auto a = RuleSet::parse(
      "version: 1\nrules:\n  - name: r\n    table: t\n    delete: [\"k:${id}\"]\n", "a");
  auto b = RuleSet::parse(
      "# comment\nversion: 1\nrules:\n- {table: t, name: r, delete: 'k:${id}'}\n", "b");
  auto c = RuleSet::parse(
      "version: 1\nrules:\n  - name: r\n    table: t\n    delete: [\"k:${ID}x\"]\n", "c");
  REQUIRE(a.rules);
  REQUIRE(b.rules);
  REQUIRE(c.rules);
  CHECK(a.rules->hash() == b.rules->hash());
  CHECK(a.rules->hash() != c.rules->hash());
}

TEST_CASE("a rules.d directory: name order, errors naming both places") {
  test::TempDir dir;
  dir.write("20-b.yaml", "version: 1\nrules:\n  - name: b\n    table: t2\n    delete: b\n");
  dir.write("10-a.yml", "version: 1\nrules:\n  - name: a\n    table: t1\n    delete: a\n");
  dir.write("README.md", "not rules");
  auto r = RuleSet::load(dir.path());
  for (const auto& e : r.errors) MESSAGE(e.str());
  REQUIRE(r.rules);
  REQUIRE(r.rules->rules().size() == 2);
  CHECK(r.rules->rules()[0].name == "a");
  CHECK(r.rules->rules()[0].file == (dir.path() / "10-a.yml").string());
  CHECK(r.rules->rules()[1].name == "b");

  dir.write("30-c.yaml", "version: 1\nrules:\n  - name: a\n    table: t3\n    delete: c\n");
  dir.write("40-d.yaml", "version: 1\nrules:\n  - name: d\n    tabel: t\n    delete: d\n");
  r = RuleSet::load(dir.path());
  CHECK(!r.rules);
  REQUIRE(r.errors.size() == 3);
  CHECK(r.errors[0].str() ==
        (dir.path() / "40-d.yaml").string() +
            ":4:5: error: unknown key 'tabel' in a rule; did you mean 'table'? "
            "expected name, table, on, changed, when, delete, delete_pattern, bump, "
            "publish, redelete_after, null_as, fallback, timezone, stream or stable");
  CHECK(r.errors[1].str() ==
        (dir.path() / "40-d.yaml").string() +
            ":3:5: error: rule has no 'table'; expected schema.table or table");
  CHECK(r.errors[2].str() == (dir.path() / "30-c.yaml").string() +
                                 ":3:5: error: duplicate rule name 'a'; first defined at " +
                                 (dir.path() / "10-a.yml").string() + ":3:5");
}

TEST_CASE("unreadable paths") {
  auto r = RuleSet::load("/nonexistent/rules.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].str() ==
        "/nonexistent/rules.yaml: error: cannot read rule file: no such file or directory");
  test::TempDir empty;
  r = RuleSet::load(empty.path());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].message == "no rule files (*.yaml or *.yml) in this directory");
}

TEST_CASE("default_identity_cost: what REPLICA IDENTITY DEFAULT costs a rule") {
  auto r = RuleSet::parse(R"(version: 1
rules:
  - name: widen
    table: t
    delete: ["k:${g}:${new.h}", "id:${id}", "lit[1]:${old.g}"]
    delete_pattern: "p:${g}:*"
  - name: fallback
    table: t
    bump: "rev:${g}"
    fallback: {bump: "rev:t"}
  - name: insert-only
    table: t
    on: [insert]
    delete: "k:${g}"
  - name: new-only
    table: t
    delete: "n:${new.g}"
)",
                          "c.yaml");
  REQUIRE(r.rules);
  const auto& rules = r.rules->rules();
  auto cost = rules::default_identity_cost(rules[0], {"id"});
  CHECK(cost.columns == std::vector<std::string>{"g"});
  CHECK(cost.patterns == std::vector<std::string>{"k:*:${new.h}", "lit\\[1\\]:*", "p:*:*"});
  CHECK(!cost.fallback);
  cost = rules::default_identity_cost(rules[0]);  // no key known: id too
  CHECK(cost.columns == std::vector<std::string>{"g", "id"});
  cost = rules::default_identity_cost(rules[1]);
  CHECK(cost.fallback);
  CHECK(cost.patterns.empty());
  CHECK(rules::default_identity_cost(rules[2]).empty());
  CHECK(rules::default_identity_cost(rules[3]).empty());
}

TEST_CASE("parse_table_name and suggest") {
  struct Case {
    std::string text, schema, table, error;
  };
  const Case cases[] = {
      {"t", "public", "t", ""},
      {"App.Items", "app", "items", ""},
      {"\"App\".\"My Items\"", "App", "My Items", ""},
      {"a.b.c", "", "", "unexpected '.' in table name"},
      {"", "", "", "expected a table name"},
      {"a.", "", "", "expected a table name after '.'"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    std::string error;
    auto name = rules::parse_table_name(c.text, &error);
    if (c.error.empty()) {
      REQUIRE(name);
      CHECK(name->schema == c.schema);
      CHECK(name->table == c.table);
    } else {
      CHECK(!name);
      CHECK(error.find(c.error) != std::string::npos);
    }
  }
  CHECK(rules::suggest("stauts", {"status", "id"}) == "status");
  CHECK(rules::suggest("zzzzzz", {"status", "id"}).empty());
}

TEST_CASE("rule files and templates are capped, with errors that name the limit") {
  pgbust::test::TempDir dir;
  // One rule, padded with a comment past the cap: refused before YAML parses it.
  std::string big = "version: 1\nrules:\n  - {name: r, table: t, delete: k}\n# " +
                    std::string(pgbust::rules::kMaxRulesBytes, 'x') + "\n";
  auto file = dir.write("big.yaml", big);
  auto r = pgbust::rules::RuleSet::load(file);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].str().find("rules are too large: more than 2097152 bytes (2 MiB)") !=
        std::string::npos);
  CHECK(r.errors[0].file == file.string());
  r = pgbust::rules::RuleSet::parse(big, "inline.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].message.starts_with("rules are too large"));

  // In a directory the cap is on all files together; the file that crosses it is named.
  std::string half =
      "version: 1\nrules: []\n# " + std::string(pgbust::rules::kMaxRulesBytes / 2 + 10, 'y') + "\n";
  dir.write("d/10-a.yaml", half);
  dir.write("d/20-b.yaml", half);
  r = pgbust::rules::RuleSet::load(dir.path() / "d");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].file == (dir.path() / "d" / "20-b.yaml").string());
  CHECK(r.errors[0].message.find("counting the files before this one") != std::string::npos);

  // A template longer than the cap: file:line:column and the limit.
  std::string long_key(pgbust::rules::kMaxTemplateBytes + 1, 'k');
  r = pgbust::rules::RuleSet::parse(
      "version: 1\nrules:\n  - name: r\n    table: t\n    delete: " + long_key + "\n", "t.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK(
      r.errors[0].str().starts_with("t.yaml:5:13: error: delete: template is 2049 bytes; the "
                                    "limit is 2048"));
  // At the cap it is fine.
  r = pgbust::rules::RuleSet::parse(
      "version: 1\nrules:\n  - name: r\n    table: t\n    delete: " + long_key.substr(1) + "\n",
      "t.yaml");
  CHECK(r.errors.empty());
}

TEST_CASE("stable: columns the rule reads, updates only; part of the hash") {
  auto ok = RuleSet::parse(
      "version: 1\nrules:\n  - name: r\n    table: t\n    stable: [tenant, Tenant, x]\n"
      "    delete: [\"k:${tenant}\"]\n",
      "s.yaml");
  REQUIRE(ok.rules);
  CHECK(ok.rules->rules()[0].stable == std::vector<std::string>{"tenant", "x"});  // folded, once
  REQUIRE(ok.warnings.size() == 1);
  CHECK(ok.warnings[0].str() ==
        "s.yaml:5:30: warning: stable: this rule reads no column 'x'; it changes nothing");
  auto plain = RuleSet::parse(
      "version: 1\nrules:\n  - name: r\n    table: t\n    delete: [\"k:${tenant}\"]\n", "p");
  REQUIRE(plain.rules);
  CHECK(plain.rules->hash() != ok.rules->hash());
  auto bad = RuleSet::parse(
      "version: 1\nrules:\n  - name: r\n    table: t\n    on: [delete]\n    stable: [\"a b\"]\n"
      "    delete: [\"k:${a}\"]\n",
      "b.yaml");
  REQUIRE(bad.errors.size() == 2);
  CHECK(bad.errors[0].str() == "b.yaml:6:16: error: stable: unexpected ' ' in name");
  CHECK(bad.errors[1].str() ==
        "b.yaml:6:5: error: stable: only applies to updates, but this rule's 'on' does not "
        "include update");
}
