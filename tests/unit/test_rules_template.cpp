// Key templates: digests, filters, the placeholder parser and rendering through the engine.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "../../rules/digest.hpp"
#include "../../rules/template.hpp"
#include "test_rules_support.hpp"

using namespace pgbust;
using namespace pgbust::rules::detail;
using namespace pgbust::test_rules;

namespace {

std::string md5_hex(const std::string& s) {
  std::string out;
  append_md5_hex(out, s, 32);
  return out;
}
std::string sha_hex(const std::string& s) {
  std::string out;
  append_sha256_hex(out, s, 64);
  return out;
}

// Parses "${x|...}" and applies its filters to `value` (nullptr: NULL).
std::pair<FilterResult, std::string> filtered(const std::string& tmpl, const char* value) {
  Slots slots;
  Template t;
  auto err = parse_template(tmpl, slots, t);
  REQUIRE_MESSAGE(!err, tmpl << ": " << (err ? err->message : ""));
  REQUIRE(t.parts.size() == 1);
  std::string out, scratch;
  std::string_view v = value ? value : "";
  auto r = apply_filters(t.parts[0].filters, value ? &v : nullptr, out, scratch);
  return {r, out};
}

}  // namespace

TEST_CASE("digests match Python's hashlib") {
  // python3 -c "import hashlib; print(hashlib.md5(v.encode()).hexdigest(), hashlib.sha256(...))"
  struct Case {
    std::string in, md5, sha256;
  };
  const Case cases[] = {
      {"", "d41d8cd98f00b204e9800998ecf8427e",
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "900150983cd24fb0d6963f7d28e17f72",
       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"The quick brown fox jumps over the lazy dog", "9e107d9d372bb6826bd81d3542a419d6",
       "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"},
      // Padding edges: 55 bytes fit one block, 56 need two, 64 a full extra block.
      {std::string(55, 'a'), "ef1772b6dff9a122358552954ad0df65",
       "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {std::string(56, 'a'), "3b0c8ac703f828b04c6c197006d17218",
       "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {std::string(63, 'a'), "b06521f39153d618550606be297466d5",
       "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {std::string(64, 'a'), "014842d480b571495a4a0363793f7367",
       "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {std::string(1000, 'a'), "cabe45dcc9ae5b66ba86600cca6b8ba8",
       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"},
      {"h\xc3\xa9llo", "be50e8478cf24ff3595bc7307fb91b50",
       "3c48591d8d098a4538f5e013dfcf406e948eac4d3277b10bf614e295d6068179"},
      {"user:42", "56dadf1868c3ba340467c942a86c29de",
       "ea3fd43be1e57d62e163dae19fc740bd6d660eec497235fd0ef859e2bd9fa328"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in.size());
    CHECK(md5_hex(c.in) == c.md5);
    CHECK(sha_hex(c.in) == c.sha256);
  }
  std::string eight;
  append_md5_hex(eight, "user:42", 8);
  CHECK(eight == "56dadf18");
  std::string one;
  append_sha256_hex(one, "abc", 1);
  CHECK(one == "b");
}

TEST_CASE("filters") {
  struct Case {
    std::string tmpl;
    const char* value;  // nullptr: NULL
    FilterResult result;
    std::string out;
  };
  const Case cases[] = {
      {"${x|lower}", "MiXeD-\xc3\x89", FilterResult::Value, "mixed-\xc3\x89"},  // ASCII only
      {"${x|upper}", "abc-\xc3\xa9", FilterResult::Value, "ABC-\xc3\xa9"},
      {"${x|trim}", " \t a b \r\n", FilterResult::Value, "a b"},
      {"${x|date}", "2024-03-05", FilterResult::Value, "2024-03-05"},
      {"${x|date}", "2024-03-05 23:59:59.123+01", FilterResult::Value,
       "2024-03-05"},  // timestamptz
      {"${x|date}", "2024-03-05T10:00:00", FilterResult::Value, "2024-03-05"},
      {"${x|date}", "12024-03-05", FilterResult::Value, "12024-03-05"},
      {"${x|date}", "infinity", FilterResult::Failed, "filter date cannot read 'infinity'"},
      {"${x|date}", "2024-02-30", FilterResult::Failed, "filter date cannot read '2024-02-30'"},
      {"${x|date}", "2024-03-05 BC", FilterResult::Failed,
       "filter date cannot read '2024-03-05 BC'"},
      {"${x|date}", "24-03-05", FilterResult::Failed, "filter date cannot read '24-03-05'"},
      {"${x|month}", "2024-03-05 10:00:00+00", FilterResult::Value, "2024-03"},
      {"${x|week_start}", "2021-01-01", FilterResult::Value, "2020-12-28"},  // across a year
      {"${x|week_start}", "2024-01-07", FilterResult::Value, "2024-01-01"},  // a Sunday
      {"${x|week_start}", "2024-01-08", FilterResult::Value, "2024-01-08"},  // a Monday
      {"${x|week_start}", "2024-12-31 23:00:00+00", FilterResult::Value, "2024-12-30"},
      {"${x|week_start}", "2020-02-29", FilterResult::Value, "2020-02-24"},  // leap day
      {"${x|week_start}", "2000-01-02", FilterResult::Value, "1999-12-27"},
      {"${x|week_start}", "2027-01-01", FilterResult::Value, "2026-12-28"},
      {"${x|week_start}", "0001-01-07", FilterResult::Value, "0001-01-01"},
      {"${x|week_start}", "9999-12-31", FilterResult::Value, "9999-12-27"},
      {"${x|week_start}", "2021-02-29", FilterResult::Failed,
       "filter week_start cannot read '2021-02-29'"},
      {"${x|md5:8}", "user:42", FilterResult::Value, "56dadf18"},
      {"${x|md5}", "abc", FilterResult::Value, "900150983cd24fb0d6963f7d28e17f72"},
      {"${x|sha256:12}", "abc", FilterResult::Value, "ba7816bf8f01"},
      {"${x|lower|md5:8}", "USER:42", FilterResult::Value, "56dadf18"},  // chained, in order
      {"${x|date|week_start}", "2024-01-07 12:00:00", FilterResult::Value, "2024-01-01"},
      {"${x|default:none}", nullptr, FilterResult::Value, "none"},
      {"${x|default: none }", nullptr, FilterResult::Value, "none"},
      {"${x|default:}", nullptr, FilterResult::Value, ""},
      {"${x|default:N|upper}", nullptr, FilterResult::Value, "N"},
      {"${x|upper|default:n}", nullptr, FilterResult::Value, "n"},  // NULL passes through upper
      {"${x|default:none}", "set", FilterResult::Value, "set"},
      {"${x|lower}", nullptr, FilterResult::Null, ""},
      {"${x|pybool}", "t", FilterResult::Value, "True"},
      {"${x|pybool}", "f", FilterResult::Value, "False"},
      {"${x|pybool}", "maybe", FilterResult::Failed, "filter pybool cannot read 'maybe'"},
      {"${ x | lower | trim }", " AB ", FilterResult::Value, "ab"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.tmpl);
    CAPTURE(c.value ? c.value : "NULL");
    auto [r, out] = filtered(c.tmpl, c.value);
    CHECK(r == c.result);
    if (r != FilterResult::Null) CHECK(out == c.out);
  }
}

TEST_CASE("template parsing") {
  struct Case {
    std::string text;
    std::vector<std::string> parts;  // "L:literal", "C:col", "N:col", "O:col", "M:table" ...
  };
  const Case cases[] = {
      {"task_stats:${assigned_department_id}", {"L:task_stats:", "C:assigned_department_id"}},
      {"${new.a}-${old.b}", {"N:a", "L:-", "O:b"}},
      {"${table}:${schema}:${op}", {"M:table", "L::", "M:schema", "L::", "M:op"}},
      {"${\"table\"}", {"C:table"}},  // quoted: a column named table
      {"${\"Mixed Case\"}", {"C:Mixed Case"}},
      {"${MixedCase}", {"C:mixedcase"}},  // unquoted names fold to lower case
      {"${new.\"A\"\"B\"}", {"N:A\"B"}},
      {"price$$:${id}", {"L:price$:", "C:id"}},
      {"a$b", {"L:a$b"}},
      {"$$${id}", {"L:$", "C:id"}},
      {"dash:*:[ab]?", {"L:dash:*:[ab]?"}},
      {"}{", {"L:}{"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    Slots slots;
    Template t;
    auto err = parse_template(c.text, slots, t);
    REQUIRE_MESSAGE(!err, (err ? err->message : ""));
    std::vector<std::string> got;
    for (const auto& p : t.parts) {
      if (!p.placeholder) {
        got.push_back("L:" + p.literal);
      } else if (p.meta != Meta::None) {
        got.push_back(std::string("M:") + (p.meta == Meta::Table    ? "table"
                                           : p.meta == Meta::Schema ? "schema"
                                                                    : "op"));
      } else {
        char tag = p.ref.image == Image::Row ? 'C' : p.ref.image == Image::New ? 'N' : 'O';
        got.push_back(std::string(1, tag) + ":" +
                      slots.names[static_cast<std::size_t>(p.ref.slot)]);
      }
    }
    CHECK(got == c.parts);
  }
}

TEST_CASE("template parse errors point inside the string") {
  struct Case {
    std::string text;
    std::size_t offset;
    std::string message;
  };
  const Case cases[] = {
      {"", 0, "empty key template"},
      {"k:${id", 2, "unterminated placeholder"},
      {"k:${}", 4, "expected a column name"},
      {"k:${ }", 5, "expected a column name"},
      {"k:${id|lowr}", 7, "unknown filter 'lowr'; did you mean 'lower'?"},
      {"k:${id|}", 7, "expected a filter name"},
      {"k:${id|md5:0}", 11, "md5 expects a number of hex digits from 1 to 32"},
      {"k:${id|md5:33}", 11, "from 1 to 32"},
      {"k:${id|sha256:x}", 14, "from 1 to 64"},
      {"k:${id|lower:x}", 12, "takes no argument"},
      {"k:${id|default}", 7, "needs its text"},
      {"k:${id x}", 7, "unexpected 'x' in placeholder"},
      {"k:${mid.id}", 4, "unknown qualifier 'mid'"},
      {"k:${new.}", 8, "expected a column name after 'new.'"},
      {"k:${\"id}", 4, "unterminated quoted name"},
      {"k:${\"\"}", 4, "empty quoted name"},
      {"k:${-}", 4, "expected a column name"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    Slots slots;
    Template t;
    auto err = parse_template(c.text, slots, t);
    REQUIRE(err);
    CHECK(err->offset == c.offset);
    CHECK_MESSAGE(err->message.find(c.message) != std::string::npos, err->message);
  }
}

TEST_CASE("rendering: metadata, filters and NULL through the engine") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: meta
    table: app.items
    delete: ["${schema}.${table}:${op}:${id}", "h:${name|lower|md5:8}", "w:${due|week_start}"]
  - name: nulls
    table: app.items
    null_as: None
    delete: "n:${parent_id}"
  - name: nulls-skipped
    table: app.items
    delete: ["s:${parent_id}", "d:${parent_id|default:root}"]
)");
  Fixture f("app", "items", {"id", "name", "due", "parent_id"}, {"id"});
  rules::Engine engine(rules, {});
  auto keys = f.run(engine, Op::Insert, nullptr,
                    f.row({{"id", val("5")},
                           {"name", val("USER:42")},
                           {"due", val("2024-01-07")},
                           {"parent_id", null_cell()}}));
  CHECK(keys == std::vector<std::string>{"delete app.items:insert:5", "delete h:56dadf18",
                                         "delete w:2024-01-01", "delete n:None", "delete d:root"});
}

// Groups: ${(SUB-TEMPLATE)|filters}, for keys that hash a composite string, e.g. Django's
// collab_stats:{hashlib.md5(f"{start}:{end}:{dept}".encode()).hexdigest()[:8]}.
TEST_CASE("groups: parsing") {
  Slots slots;
  Template t;
  auto err = parse_template("c:${( ${start_date}:${new.end_date|date}$)x$$ )|md5:8}", slots, t);
  REQUIRE_MESSAGE(!err, (err ? err->message : ""));
  REQUIRE(t.parts.size() == 2);
  const Part& g = t.parts[1];
  CHECK(g.meta == Meta::Group);
  CHECK(g.source == "${( ${start_date}:${new.end_date|date}$)x$$ )|md5:8}");
  REQUIRE(g.filters.size() == 1);
  CHECK(g.filters[0].kind == FilterKind::Md5);
  REQUIRE(g.group.size() == 5);  // " ", ${start_date}, ":", ${new.end_date|date}, ")x$ "
  CHECK(g.group[0].literal == " ");
  CHECK(g.group[4].literal == ")x$ ");
  CHECK(g.group[1].ref.image == Image::Row);
  CHECK(g.group[2].literal == ":");
  CHECK(g.group[3].ref.image == Image::New);
  CHECK(g.group[3].filters.size() == 1);
  CHECK(slots.names == std::vector<std::string>{"start_date", "end_date"});
  CHECK(t.uses_row);
  CHECK(t.uses_new);
  CHECK(t.uses_columns);
  // Outside a group ')' and '$)' are plain text, as before.
  Slots s2;
  Template t2;
  REQUIRE(!parse_template("a)$)${id}", s2, t2));
  CHECK(t2.parts[0].literal == "a)$)");
}

TEST_CASE("groups: parse errors") {
  struct Case {
    std::string text;
    std::size_t offset;
    std::string message;
  };
  const Case cases[] = {
      {"k:${()}", 4, "empty group"},
      {"k:${(${a}", 4, "unterminated group"},
      {"k:${(${a})", 2, "unterminated placeholder"},
      {"k:${(${a})x}", 10, "unexpected 'x' in placeholder"},
      {"k:${(${a|nope})}", 9, "unknown filter 'nope'"},
      {"k:${(${(${(${(${(${a})})})})})}", 16, "groups nest at most 4 deep"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    Slots slots;
    Template t;
    auto err = parse_template(c.text, slots, t);
    REQUIRE(err);
    CHECK(err->offset == c.offset);
    CHECK_MESSAGE(err->message.find(c.message) != std::string::npos, err->message);
  }
  Slots slots;
  Template t;
  CHECK(!parse_template("k:${(${(${(${(${a})})})})}", slots, t));  // 4 deep is fine
}

TEST_CASE("groups: rendering through the engine") {
  // python3 -c "import hashlib; print(hashlib.md5(b'2024-03-04:2024-03-08:10').hexdigest()[:8])"
  auto rules = load_rules(R"(
version: 1
rules:
  - name: collab
    table: work_order_task
    delete: "collab_stats:${(${start_date}:${end_date}:${assigned_department_id})|md5:8}"
  - name: collab-py
    table: work_order_task
    null_as: None
    delete: "py:${(${start_date}:${end_date}:${assigned_department_id})|md5:8}"
  - name: shapes
    table: work_order_task
    on: [insert]
    delete: ["plain:${(${op}:${id})}", "esc:${(a$)b:${id})|md5:8}",
             "nest:${(${(${id})|md5:4}:x)|md5:8}", "inner:${(${title|lower}*)|upper}"]
)");
  Fixture f("public", "work_order_task",
            {"id", "title", "start_date", "end_date", "assigned_department_id"}, {"id"});
  rules::Engine engine(rules, {});
  auto row = [&](const char* dept, Cell end = val("2024-03-08")) {
    return f.row({{"id", val("5")},
                  {"title", val("Pump")},
                  {"start_date", val("2024-03-04")},
                  {"end_date", end},
                  {"assigned_department_id", val(dept)}});
  };

  SUBCASE("insert: the digest of the composite text; inner filters; literal ')'; nesting") {
    auto keys = f.run(engine, Op::Insert, nullptr, row("10"));
    CHECK(keys == std::vector<std::string>{"delete collab_stats:00a57e0b", "delete py:00a57e0b",
                                           "delete plain:insert:5", "delete esc:9b17e491",
                                           "delete nest:32cfd1e8", "delete inner:PUMP*"});
  }
  SUBCASE("a move between departments invalidates both digests") {
    auto keys = f.run(engine, Op::Update, row("10"), row("20"));
    CHECK(keys == std::vector<std::string>{"delete collab_stats:00a57e0b",
                                           "delete collab_stats:0fe2ed6b", "delete py:00a57e0b",
                                           "delete py:0fe2ed6b"});
  }
  SUBCASE("NULL inside a group skips the key, or is spelled as null_as") {
    auto keys = f.run(engine, Op::Insert, nullptr, row("10", null_cell()));
    // md5("2024-03-04:None:10")
    CHECK(std::find(keys.begin(), keys.end(), "delete py:c5ec5341") != keys.end());
    for (const auto& k : keys) CHECK(k.find("collab_stats:") == std::string::npos);
  }
  SUBCASE("an unknown value inside widens the whole group to one '*'") {
    // REPLICA IDENTITY DEFAULT: the old row has only the key.
    auto keys = f.run(engine, Op::Update, f.row({{"id", val("5")}}), row("20"));
    CHECK(keys == std::vector<std::string>{"delete_pattern collab_stats:*",
                                           "delete collab_stats:0fe2ed6b", "delete_pattern py:*",
                                           "delete py:0fe2ed6b"});
    CHECK(f.last.widened_line().find("old.start_date, old.end_date, old.assigned_department_id "
                                     "unknown") != std::string::npos);
  }
  SUBCASE("a filter that fails on the group's text widens, naming the group") {
    auto r2 = load_rules(R"(
version: 1
rules:
  - name: weeks
    table: work_order_task
    delete: "w:${(${title}-01)|week_start}:${id}"
)");
    rules::Engine e2(r2, {});
    auto keys = f.run(e2, Op::Insert, nullptr, row("10"));
    CHECK(keys == std::vector<std::string>{"delete_pattern w:*:5"});
    CHECK(f.last.widened_line().find("${(${title}-01)|week_start}: filter week_start cannot "
                                     "read 'Pump-01'") != std::string::npos);
  }
  SUBCASE("what REPLICA IDENTITY DEFAULT costs: the group's columns, one '*' in the pattern") {
    auto cost = rules::default_identity_cost(rules->rules()[0], {"id"});
    CHECK(cost.columns ==
          std::vector<std::string>{"start_date", "end_date", "assigned_department_id"});
    CHECK(cost.patterns == std::vector<std::string>{"collab_stats:*"});
    auto needs = rules->old_values_needed("public", "work_order_task");
    std::size_t collab = 0;
    for (const auto& n : needs)
      if (n.rule->name == "collab") {
        ++collab;
        CHECK(n.widens);
      }
    CHECK(collab == 3);
  }
}
