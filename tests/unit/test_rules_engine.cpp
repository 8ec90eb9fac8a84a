// Matching and rendering: row images, moves, dedup, escaping, key_prefix, changed, when,
// widening (DEFAULT identity, TOAST, TRUNCATE, missing columns, filters), fallback, binding.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "test_rules_support.hpp"

using namespace pgbust;
using namespace pgbust::test_rules;
using Keys = std::vector<std::string>;

namespace {

const char* kTaskRules = R"(
version: 1
rules:
  - name: task-stats
    table: public.work_order_task
    on: [insert, update, delete]
    delete:
      - "task_stats:${assigned_department_id}"
      - "operator_stats:${assigned_operator_id}"
    bump: "rev:dept:${assigned_department_id}"
)";

Fixture tasks() {
  return Fixture("public", "work_order_task",
                 {"id", "status", "assigned_department_id", "assigned_operator_id", "body"},
                 {"id"});
}

}  // namespace

TEST_CASE("row images: insert reads new, delete reads old") {
  rules::Engine engine(load_rules(kTaskRules), {});
  auto f = tasks();
  int fired = 0;
  auto keys = f.run(engine, Op::Insert, nullptr,
                    f.row({{"id", val("1")},
                           {"assigned_department_id", val("5")},
                           {"assigned_operator_id", val("9")}}),
                    &fired);
  CHECK(fired == 1);
  CHECK(keys == Keys{"delete task_stats:5", "delete operator_stats:9", "bump rev:dept:5"});
  CHECK(!f.last.has_widened());
  CHECK(f.last.lines.front() == "fired task-stats");

  keys = f.run(engine, Op::Delete,
               f.row({{"id", val("1")},
                      {"assigned_department_id", val("6")},
                      {"assigned_operator_id", val("8")}}),
               nullptr);
  CHECK(keys == Keys{"delete task_stats:6", "delete operator_stats:8", "bump rev:dept:6"});
}

TEST_CASE("row images: an update that moves a row invalidates both groups, deduplicated") {
  rules::Engine engine(load_rules(kTaskRules), {});
  auto f = tasks();
  auto old_row = f.row({{"id", val("1")},
                        {"assigned_department_id", val("5")},
                        {"assigned_operator_id", val("9")},
                        {"status", val("open")}});
  auto new_row = f.row({{"id", val("1")},
                        {"assigned_department_id", val("7")},
                        {"assigned_operator_id", val("9")},
                        {"status", val("open")}});
  auto keys = f.run(engine, Op::Update, old_row, new_row);
  CHECK(keys == Keys{"delete task_stats:5", "delete task_stats:7", "delete operator_stats:9",
                     "bump rev:dept:5", "bump rev:dept:7"});
  // No move: every key once.
  keys = f.run(engine, Op::Update, old_row, old_row);
  CHECK(keys == Keys{"delete task_stats:5", "delete operator_stats:9", "bump rev:dept:5"});
}

TEST_CASE("row images: new.x and old.x pick one image; missing images skip the key") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: pick
    table: t
    delete: ["new:${new.g}", "old:${old.g}", "any:${g}"]
)");
  rules::Engine engine(rules, {});
  Fixture f("public", "t", {"id", "g"}, {"id"});
  auto a = f.row({{"id", val("1")}, {"g", val("A")}});
  auto b = f.row({{"id", val("1")}, {"g", val("B")}});
  CHECK(f.run(engine, Op::Update, a, b) ==
        Keys{"delete new:B", "delete old:A", "delete any:A", "delete any:B"});
  CHECK(f.run(engine, Op::Insert, nullptr, b) == Keys{"delete new:B", "delete any:B"});
  CHECK(f.run(engine, Op::Delete, a, nullptr) == Keys{"delete old:A", "delete any:A"});
  CHECK(!f.last.has_widened());
}

TEST_CASE("escaping: row values cannot widen a pattern; template wildcards stay") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: dash
    table: t
    delete_pattern: "dash:${name}:*"
    delete: "exact:${name}"
)");
  rules::Engine engine(rules, {});
  Fixture f("public", "t", {"id", "name"}, {"id"});
  auto keys = f.run(engine, Op::Insert, nullptr, f.row({{"id", val("1")}, {"name", val("a*b")}}));
  CHECK(keys == Keys{"delete exact:a*b", "delete_pattern dash:a\\*b:*"});
  const std::string pattern = "dash:a\\*b:*";
  CHECK(rules::glob_match(pattern, "dash:a*b:1"));
  CHECK(!rules::glob_match(pattern, "dash:axb:1"));
  CHECK(!rules::glob_match(pattern, "dash:aXYZb:1"));

  struct Case {
    std::string value, matches, not_matches;
  };
  const Case cases[] = {
      {"a?b", "dash:a?b:x", "dash:acb:x"},  {"[ab]", "dash:[ab]:x", "dash:a:x"},
      {"a\\b", "dash:a\\b:x", "dash:ab:x"}, {"]^-", "dash:]^-:x", "dash:x:x"},
      {"*", "dash:*:x", "dash:anything:x"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.value);
    auto k = f.run(engine, Op::Insert, nullptr, f.row({{"id", val("1")}, {"name", val(c.value)}}));
    REQUIRE(k.size() == 2);
    std::string p = k[1].substr(std::string("delete_pattern ").size());
    CHECK(p == "dash:" + rules::glob_escape(c.value) + ":*");
    CHECK(rules::glob_match(p, c.matches));
    CHECK(!rules::glob_match(p, c.not_matches));
  }
}

TEST_CASE("glob_match follows Redis' stringmatchlen") {
  struct Case {
    const char *pattern, *text;
    bool match;
  };
  const Case cases[] = {
      {"*", "", true},           {"*", "abc", true},     {"a*", "abc", true},
      {"a*c", "abxc", true},     {"a*c", "abxd", false}, {"a?c", "abc", true},
      {"a?c", "ac", false},      {"[abc]", "b", true},   {"[^abc]", "b", false},
      {"[a-c]x", "bx", true},    {"[c-a]x", "bx", true}, {"[a-c]x", "dx", false},
      {"\\*", "*", true},        {"\\*", "a", false},    {"a\\?", "a?", true},
      {"[\\]]", "]", true},      {"abc", "abc", true},   {"abc", "abcd", false},
      {"a**", "a", true},        {"", "", true},         {"", "a", false},
      {"dash:*", "dash:", true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.pattern);
    CAPTURE(c.text);
    CHECK(rules::glob_match(c.pattern, c.text) == c.match);
  }
}

TEST_CASE("key_prefix applies to every key and is escaped inside patterns") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: p
    table: t
    delete: "k:${id}"
    delete_pattern: "p:${id}:*"
    bump: "rev:${id}"
)");
  rules::Engine engine(rules, {":1:[x]"});
  Fixture f("public", "t", {"id"}, {"id"});
  auto keys = f.run(engine, Op::Insert, nullptr, f.row({{"id", val("5")}}));
  CHECK(keys == Keys{"delete :1:[x]k:5", "delete_pattern :1:\\[x\\]p:5:*", "bump :1:[x]rev:5"});
}

TEST_CASE("changed: updates fire only when a listed column differs") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: c
    table: t
    changed: [status, g]
    delete: "k:${id}"
)");
  rules::Engine engine(rules, {});
  Fixture f("public", "t", {"id", "status", "g", "other"}, {"id"});
  auto base =
      f.row({{"id", val("1")}, {"status", val("a")}, {"g", null_cell()}, {"other", val("x")}});
  struct Case {
    const char* name;
    const RowImage* old_row;
    const RowImage* new_row;
    bool fires;
  };
  const Case cases[] = {
      {"only other changed", base,
       f.row({{"id", val("1")}, {"status", val("a")}, {"g", null_cell()}, {"other", val("y")}}),
       false},
      {"status changed", base,
       f.row({{"id", val("1")}, {"status", val("b")}, {"g", null_cell()}, {"other", val("x")}}),
       true},
      {"NULL to value", base,
       f.row({{"id", val("1")}, {"status", val("a")}, {"g", val("1")}, {"other", val("x")}}), true},
      {"old value unknown counts as changed", f.row({{"id", val("1")}}),
       f.row({{"id", val("1")}, {"status", val("a")}, {"g", null_cell()}}), true},
      {"no old tuple (DEFAULT identity): unknown, changed", nullptr,
       f.row({{"id", val("1")}, {"status", val("a")}, {"g", null_cell()}}), true},
      {"unchanged TOAST is unchanged", base,
       f.row({{"id", val("1")},
              {"status", unknown_cell(Unknown::UnchangedToast)},
              {"g", null_cell()},
              {"other", val("y")}}),
       false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    int fired = -1;
    f.run(engine, Op::Update, c.old_row, c.new_row, &fired);
    CHECK(fired == (c.fires ? 1 : 0));
  }
  int fired = -1;
  f.run(engine, Op::Insert, nullptr, base, &fired);
  CHECK(fired == 1);  // inserts and deletes ignore `changed`
  f.run(engine, Op::Delete, base, nullptr, &fired);
  CHECK(fired == 1);
}

TEST_CASE("when: per op, and on either image of an update") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: w
    table: t
    when: "status <> 'draft'"
    delete: "k:${g}"
)");
  rules::Engine engine(rules, {});
  Fixture f("public", "t", {"id", "status", "g"}, {"id"});
  auto draft = f.row({{"id", val("1")}, {"status", val("draft")}, {"g", val("1")}});
  auto open = f.row({{"id", val("1")}, {"status", val("open")}, {"g", val("2")}});
  CHECK(f.run(engine, Op::Insert, nullptr, draft).empty());
  CHECK(f.run(engine, Op::Insert, nullptr, open) == Keys{"delete k:2"});
  CHECK(f.run(engine, Op::Delete, draft, nullptr).empty());
  CHECK(f.run(engine, Op::Delete, open, nullptr) == Keys{"delete k:2"});
  // Publishing a draft (draft -> open) fires: the new image matches; both groups' keys.
  CHECK(f.run(engine, Op::Update, draft, open) == Keys{"delete k:1", "delete k:2"});
  CHECK(f.run(engine, Op::Update, open, draft) == Keys{"delete k:2", "delete k:1"});
  CHECK(f.run(engine, Op::Update, draft, draft).empty());
  // Old status unknown (DEFAULT identity): it might not have been a draft, so fire.
  int fired = 0;
  f.run(engine, Op::Update, nullptr, draft, &fired);
  CHECK(fired == 1);
}

TEST_CASE(
    "when: new.x on delete is NULL, old.x on insert is NULL; a condition that reads only those "
    "fires") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: w
    table: t
    when: "new.status = 'open' OR old.status = 'open'"
    delete: "k:${id}"
)");
  rules::Engine engine(rules, {});
  Fixture f("public", "t", {"id", "status"}, {"id"});
  auto open = f.row({{"id", val("1")}, {"status", val("open")}});
  auto shut = f.row({{"id", val("1")}, {"status", val("closed")}});
  CHECK(f.run(engine, Op::Insert, nullptr, shut).empty());
  CHECK(f.run(engine, Op::Insert, nullptr, open) == Keys{"delete k:1"});
  CHECK(f.run(engine, Op::Delete, open, nullptr) == Keys{"delete k:1"});
  CHECK(f.run(engine, Op::Delete, shut, nullptr).empty());

  rules::Engine only_new(load_rules(R"(
version: 1
rules:
  - name: w
    table: t
    when: "new.status <> 'draft'"
    delete: "k:${id}"
)"),
                         {});
  auto draft = f.row({{"id", val("1")}, {"status", val("draft")}});
  CHECK(f.run(only_new, Op::Insert, nullptr, draft).empty());
  CHECK(f.run(only_new, Op::Update, open, draft).empty());
  CHECK(f.run(only_new, Op::Delete, draft, nullptr) == Keys{"delete k:1"});  // cannot judge: fire
}

TEST_CASE("widening: REPLICA IDENTITY DEFAULT, no old tuple") {
  rules::Engine engine(load_rules(R"(
version: 1
rules:
  - name: r
    table: t
    delete: ["g:${g}", "id:${id}", "u[1]:${g}"]
)"),
                       {});
  Fixture f("public", "t", {"id", "g"}, {"id"});
  auto keys = f.run(engine, Op::Update, nullptr, f.row({{"id", val("1")}, {"g", val("7")}}));
  // The new side is exact; the old side of the non-key column widens; the key column's old
  // value is the new one (promise 4), so id:1 is exact and once. A widened exact key's own
  // text is escaped.
  CHECK(keys == Keys{"delete_pattern g:*", "delete g:7", "delete id:1", "delete_pattern u\\[1\\]:*",
                     "delete u[1]:7"});
  CHECK(f.last.widened_line() ==
        "widened r: old.g unknown (old value not in the WAL (REPLICA IDENTITY DEFAULT)); keys "
        "widened to patterns");
  REQUIRE(f.last.whys.size() == 1);  // once per rule per event
  CHECK(f.last.whys[0] == Unknown::NotInImage);

  // A key tuple (the key changed): old key columns known, the rest not.
  keys = f.run(engine, Op::Update, f.row({{"id", val("0")}}),
               f.row({{"id", val("1")}, {"g", val("7")}}));
  CHECK(keys == Keys{"delete_pattern g:*", "delete g:7", "delete id:0", "delete id:1",
                     "delete_pattern u\\[1\\]:*", "delete u[1]:7"});
  // A delete with DEFAULT identity carries only the key.
  keys = f.run(engine, Op::Delete, f.row({{"id", val("3")}}), nullptr);
  CHECK(keys == Keys{"delete_pattern g:*", "delete id:3", "delete_pattern u\\[1\\]:*"});
}

TEST_CASE("widening: unchanged TOAST values") {
  rules::Engine engine(load_rules(R"(
version: 1
rules:
  - name: r
    table: t
    delete: "b:${body|md5:6}"
)"),
                       {});
  Fixture f("public", "t", {"id", "body"}, {"id"});
  auto toast = f.row({{"id", val("1")}, {"body", unknown_cell(Unknown::UnchangedToast)}});
  // REPLICA IDENTITY FULL: the old image has it, and unchanged means equal.
  auto keys = f.run(engine, Op::Update, f.row({{"id", val("1")}, {"body", val("abc")}}), toast);
  CHECK(keys == Keys{"delete b:900150"});
  CHECK(!f.last.has_widened());
  // DEFAULT identity: nobody knows it.
  keys = f.run(engine, Op::Update, nullptr, toast);
  CHECK(keys == Keys{"delete_pattern b:*"});
  CHECK(f.last.widened_line().find("new.body unknown (unchanged TOAST value not sent)") !=
        std::string::npos);
}

TEST_CASE("widening: TRUNCATE") {
  rules::Engine engine(load_rules(R"(
version: 1
rules:
  - name: r
    table: t
    delete: ["g:${g}:${id}", "all_tasks", "op:${op}"]
    delete_pattern: "dash:*"
    bump: "rev:${g}"
  - name: not-on-truncate
    table: t
    on: [insert, update, delete]
    delete: "x"
)"),
                       {});
  Fixture f("public", "t", {"id", "g"}, {"id"});
  int fired = 0;
  auto keys = f.run(engine, Op::Truncate, nullptr, nullptr, &fired);
  CHECK(fired == 1);
  CHECK(keys == Keys{"delete_pattern g:*:*", "delete all_tasks", "delete op:truncate",
                     "delete_pattern dash:*", "delete_pattern rev:*"});
  CHECK(f.last.widened_line() == "widened r: g, id unknown (TRUNCATE); keys widened to patterns");
}

TEST_CASE("widening: fallback runs instead of patterns") {
  rules::Engine engine(load_rules(R"(
version: 1
rules:
  - name: r
    table: t
    delete: ["g:${g}", "fixed"]
    bump: "rev:g:${g}"
    fallback:
      bump: "rev:table:${schema}.${table}"
      delete_pattern: "g:${id}:*"
)"),
                       {});
  Fixture f("public", "t", {"id", "g"}, {"id"});
  // Exact where it can be: the new side and the literal key; the fallback for the old side.
  auto keys = f.run(engine, Op::Update, nullptr, f.row({{"id", val("1")}, {"g", val("7")}}));
  CHECK(keys == Keys{"delete g:7", "delete fixed", "bump rev:g:7", "delete_pattern g:1:*",
                     "bump rev:table:public.t"});
  CHECK(f.last.widened_line() ==
        "widened r: old.g unknown (old value not in the WAL (REPLICA IDENTITY DEFAULT)); ran "
        "fallback");
  // No unknowns: no fallback.
  keys = f.run(engine, Op::Insert, nullptr, f.row({{"id", val("1")}, {"g", val("7")}}));
  CHECK(keys == Keys{"delete g:7", "delete fixed", "bump rev:g:7"});
  // TRUNCATE: the fallback's own unknown value widens to a pattern.
  keys = f.run(engine, Op::Truncate, nullptr, nullptr);
  CHECK(keys == Keys{"delete fixed", "delete_pattern g:*:*", "bump rev:table:public.t"});
}

TEST_CASE("widening: a column the table does not have, and filters that cannot read") {
  rules::Engine engine(load_rules(R"(
version: 1
rules:
  - name: r
    table: t
    delete: ["m:${missing}", "w:${due|week_start}"]
)"),
                       {});
  Fixture f("public", "t", {"id", "due"}, {"id"});
  auto keys =
      f.run(engine, Op::Insert, nullptr, f.row({{"id", val("1")}, {"due", val("infinity")}}));
  CHECK(keys == Keys{"delete_pattern m:*", "delete_pattern w:*"});
  CHECK(f.last.widened_line() ==
        "widened r: new.missing unknown (column not in table or publication), new.due: filter "
        "week_start cannot read 'infinity'; keys widened to patterns");
  keys = f.run(engine, Op::Insert, nullptr, f.row({{"id", val("1")}, {"due", val("2024-01-07")}}));
  CHECK(keys == Keys{"delete_pattern m:*", "delete w:2024-01-01"});
}

TEST_CASE("widen_table and widen_rule: every value unknown, any op") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: a
    table: t
    on: [insert]
    delete: ["a:${id}", "op:${op}:x"]
  - name: b
    table: t
    when: "FALSE"
    delete: "never"
  - name: c
    table: other
    delete: "c"
)");
  rules::Engine engine(rules, {});
  Recorder rec;
  CHECK(engine.widen_table("public", "t", Unknown::NotifyGap, rec) == 1);
  CHECK(rec.keys() == Keys{"delete_pattern a:*", "delete_pattern op:*:x"});
  CHECK(rec.widened_line() ==
        "widened a: id unknown (NOTIFY gap after (re)connect), ${op}: any operation (the whole "
        "table is widened); keys widened to patterns");
  REQUIRE(!rec.whys.empty());
  CHECK(rec.whys[0] == Unknown::NotifyGap);
  CHECK(engine.widen_table("public", "nope", Unknown::NotifyGap, rec) == 0);
  Recorder one;
  engine.widen_rule(rules->rules()[2], Unknown::Polled, one);
  CHECK(one.keys() == Keys{"delete c"});
  CHECK(!one.has_widened());
}

TEST_CASE("deduplication within a rule, not hiding other rules") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: a
    table: t
    delete: ["k:${id}", "k:${new.id}", "k:${old.id}"]
  - name: b
    table: t
    delete: "k:${id}"
)");
  rules::Engine engine(rules, {});
  Fixture f("public", "t", {"id"}, {"id"});
  auto r = f.row({{"id", val("1")}});
  CHECK(f.run(engine, Op::Update, r, r) == Keys{"delete k:1", "delete k:1"});  // once per rule
}

TEST_CASE("tables without rules, publish-only rules, rebinding after ALTER TABLE") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: pub
    table: t
    publish: changes
  - name: k
    table: t
    delete: "k:${g}"
)");
  rules::Engine engine(rules, {});
  Fixture none("public", "nothing", {"id"}, {"id"});
  CHECK(!engine.has_rules(none.table));
  int fired = -1;
  CHECK(none.run(engine, Op::Insert, nullptr, none.row({{"id", val("1")}}), &fired).empty());
  CHECK(fired == 0);
  CHECK(none.last.lines.empty());

  Fixture f("public", "t", {"id", "g"}, {"id"});
  CHECK(engine.has_rules(f.table));
  auto keys =
      f.run(engine, Op::Insert, nullptr, f.row({{"id", val("1")}, {"g", val("5")}}), &fired);
  CHECK(fired == 2);
  CHECK(f.last.lines == Keys{"fired pub", "fired k", "delete k:5"});
  CHECK(rules->rules()[0].publish == "changes");

  // The source re-describes the table with another layout and a new generation.
  f.table.columns = {"g", "extra", "id"};
  f.table.key = {false, false, true};
  f.table.generation = 2;
  keys = f.run(engine, Op::Insert, nullptr,
               f.row({{"id", val("1")}, {"g", val("6")}, {"extra", val("x")}}));
  CHECK(keys == Keys{"delete k:6"});
}

TEST_CASE("schema-qualified and quoted table names") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: a
    table: '"Sales"."Order Items"'
    delete: "a"
  - name: b
    table: Sales.Orders
    delete: "b"
)");
  rules::Engine engine(rules, {});
  Fixture quoted("Sales", "Order Items", {"id"}, {"id"});
  CHECK(engine.has_rules(quoted.table));
  Fixture folded("sales", "orders", {"id"}, {"id"});
  CHECK(engine.has_rules(folded.table));
  Fixture upper("Sales", "Orders", {"id"}, {"id"});
  CHECK(!engine.has_rules(upper.table));
  CHECK(rules->tables() == Keys{"Sales.Order Items", "sales.orders"});
}

TEST_CASE("a Sink may call back into the engine (the pipeline widens from inside emit)") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: r
    table: t
    delete: ["a:${g}", "b:${g}", "c:${id}"]
    bump: "rev:${g}"
    fallback:
      delete: "fb:${id}"
)");
  rules::Engine engine(rules, {});
  struct Reentrant : Recorder {
    rules::Engine* engine = nullptr;
    bool done = false;
    void emit(const rules::Rule& r, rules::Action a, std::string_view key) override {
      Recorder::emit(r, a, key);
      if (!done) {
        done = true;
        Recorder inner;
        engine->widen_rule(r, Unknown::TooManyKeys, inner);
        lines.push_back("inner: " + std::to_string(inner.keys().size()) + " keys");
      }
    }
  } sink;
  sink.engine = &engine;
  Fixture f("public", "t", {"id", "g"}, {"id"});
  ChangeEvent ev;
  ev.op = Op::Update;
  ev.table = &f.table;
  ev.old_row = nullptr;  // old g unknown: the outer evaluation needs its fallback
  ev.new_row = f.row({{"id", val("1")}, {"g", val("7")}});
  CHECK(engine.evaluate(ev, sink) == 1);
  CHECK(sink.lines == std::vector<std::string>{
                          "fired r", "delete a:7", "inner: 1 keys", "delete b:7", "delete c:1",
                          "bump rev:7", "delete fb:1",
                          "widened r: old.g unknown (old value not in the WAL (REPLICA IDENTITY "
                          "DEFAULT)); ran fallback"});
}

TEST_CASE("table names with dots do not collide") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: ab-c
    table: '"a.b".c'
    delete: "x"
)");
  rules::Engine engine(rules, {});
  Fixture same("a.b", "c", {"id"}, {"id"});
  Fixture other("a", "b.c", {"id"}, {"id"});
  CHECK(engine.has_rules(same.table));
  CHECK(!engine.has_rules(other.table));
  Recorder rec;
  CHECK(engine.widen_table("a", "b.c", Unknown::NotifyGap, rec) == 0);
  CHECK(engine.widen_table("a.b", "c", Unknown::NotifyGap, rec) == 1);
}

TEST_CASE("a widen followed by a change on the same engine (regression: buffers sized apart)") {
  std::string many = "k";
  std::vector<std::string> columns = {"id"};
  for (int i = 0; i < 40; ++i) {
    many += ":${c" + std::to_string(i) + "}";
    columns.push_back("c" + std::to_string(i));
  }
  auto rules =
      load_rules("version: 1\nrules:\n  - name: r\n    table: t\n    delete: \"" + many + "\"\n");
  rules::Engine engine(rules, {});
  Recorder widened;
  CHECK(engine.widen_table("public", "t", Unknown::Polled, widened) == 1);
  Fixture f("public", "t", columns, {"id"});
  std::vector<std::pair<std::string, Cell>> cells;
  std::string expect = "delete k";
  for (int i = 0; i < 40; ++i) {
    cells.emplace_back("c" + std::to_string(i), val(std::to_string(i)));
    expect += ":" + std::to_string(i);
  }
  auto row = f.row(cells);
  CHECK(f.run(engine, Op::Update, row, row) == Keys{expect});
  CHECK(f.run(engine, Op::Insert, nullptr, row) == Keys{expect});
}

TEST_CASE("stable: a stable column's unknown old value is the new one; others still widen") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: r
    table: t
    stable: [tenant]
    delete: ["tenant:${tenant}", "g:${g}"]
)");
  rules::Engine engine(rules, {});
  Fixture f("public", "t", {"id", "tenant", "g"}, {"id"});
  // DEFAULT identity, no old tuple: tenant exact (stable), g widens (not stable).
  auto keys = f.run(engine, Op::Update, nullptr,
                    f.row({{"id", val("1")}, {"tenant", val("acme")}, {"g", val("7")}}));
  CHECK(keys == Keys{"delete tenant:acme", "delete_pattern g:*", "delete g:7"});
  CHECK(f.last.widened_line() ==
        "widened r: old.g unknown (old value not in the WAL (REPLICA IDENTITY DEFAULT)); keys "
        "widened to patterns");
  // The key changed (a key tuple): stable still fills in the old value.
  keys = f.run(engine, Op::Update, f.row({{"id", val("0")}}),
               f.row({{"id", val("1")}, {"tenant", val("acme")}, {"g", val("7")}}));
  CHECK(keys == Keys{"delete tenant:acme", "delete_pattern g:*", "delete g:7"});
  // A polled update: the same.
  keys = f.run(engine, Op::Update,
               f.row({{"id", val("1")},
                      {"tenant", unknown_cell(Unknown::Polled)},
                      {"g", unknown_cell(Unknown::Polled)}}),
               f.row({{"id", val("1")}, {"tenant", val("acme")}, {"g", val("7")}}));
  CHECK(keys == Keys{"delete tenant:acme", "delete_pattern g:*", "delete g:7"});
  // A known old value is used as it is (FULL identity): a stable column is not made up.
  keys =
      f.run(engine, Op::Update, f.row({{"id", val("1")}, {"tenant", val("old")}, {"g", val("7")}}),
            f.row({{"id", val("1")}, {"tenant", val("acme")}, {"g", val("7")}}));
  CHECK(keys == Keys{"delete tenant:old", "delete tenant:acme", "delete g:7"});
  CHECK(!f.last.has_widened());
  // A delete has no new row to take it from: it widens.
  keys = f.run(engine, Op::Delete, f.row({{"id", val("1")}}), nullptr);
  CHECK(keys == Keys{"delete_pattern tenant:*", "delete_pattern g:*"});
  // Unchanged TOAST and TRUNCATE are not "old value unknown": stable does not apply.
  keys = f.run(
      engine, Op::Update, nullptr,
      f.row(
          {{"id", val("1")}, {"tenant", unknown_cell(Unknown::UnchangedToast)}, {"g", val("7")}}));
  CHECK(keys == Keys{"delete_pattern tenant:*", "delete_pattern g:*", "delete g:7"});
}

TEST_CASE("stable: without it the same update widens (the default)") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: r
    table: t
    delete: ["tenant:${tenant}"]
)");
  rules::Engine engine(rules, {});
  Fixture f("public", "t", {"id", "tenant"}, {"id"});
  auto keys =
      f.run(engine, Op::Update, nullptr, f.row({{"id", val("1")}, {"tenant", val("acme")}}));
  CHECK(keys == Keys{"delete_pattern tenant:*", "delete tenant:acme"});
}

TEST_CASE("stable: default_identity_cost counts it for updates, not deletes") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: r
    table: t
    stable: [tenant]
    delete: ["tenant:${tenant}:${g}"]
)");
  const rules::Rule& r = rules->rules()[0];
  CHECK(r.stable == std::vector<std::string>{"tenant"});
  auto del = rules::default_identity_cost(r, {"id"});
  CHECK(del.columns == std::vector<std::string>{"tenant", "g"});
  CHECK(del.patterns == std::vector<std::string>{"tenant:*:*"});
  auto upd = rules::default_identity_cost(r, {"id"}, true);
  CHECK(upd.columns == std::vector<std::string>{"g"});
  CHECK(upd.patterns == std::vector<std::string>{"tenant:${tenant}:*"});
}
