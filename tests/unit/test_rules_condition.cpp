// `when:` conditions: parsing, errors with positions, SQL three-valued logic, numeric vs
// text comparison, booleans, and unknown values.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "../../rules/condition.hpp"

using namespace pgbust::rules::detail;

namespace {

// Values by "new.x" / "old.x"; "U" means unknown, absent means NULL. Unqualified columns read
// the image named by `ctx`.
class MapValues : public ValueSource {
 public:
  MapValues(const Slots& slots, std::map<std::string, std::string> values, Image ctx)
      : slots_(slots), values_(std::move(values)), ctx_(ctx) {}
  CondValue get(const ColumnRef& r) const override {
    Image im = r.image == Image::Row ? ctx_ : r.image;
    std::string key =
        (im == Image::Old ? "old." : "new.") + slots_.names[static_cast<std::size_t>(r.slot)];
    auto it = values_.find(key);
    if (it == values_.end()) return {CondValue::State::Null, {}};
    if (it->second == "U") return {CondValue::State::Unknown, {}};
    return {CondValue::State::Text, it->second};
  }

 private:
  const Slots& slots_;
  std::map<std::string, std::string> values_;
  Image ctx_;
};

std::uint8_t eval(const std::string& text, std::map<std::string, std::string> values,
                  Image ctx = Image::New) {
  Slots slots;
  Condition c;
  auto err = parse_condition(text, slots, c);
  REQUIRE_MESSAGE(!err, text << ": " << (err ? err->message : ""));
  return evaluate(c, MapValues(slots, std::move(values), ctx));
}

constexpr std::uint8_t T = kTrue, F = kFalse, N = kNull;

}  // namespace

TEST_CASE("conditions: comparisons, numbers, text, booleans") {
  struct Case {
    std::string cond;
    std::map<std::string, std::string> values;
    std::uint8_t expect;
  };
  const Case cases[] = {
      {"new.status <> 'draft'", {{"new.status", "open"}}, T},
      {"new.status <> 'draft'", {{"new.status", "draft"}}, F},
      {"new.status != 'draft'", {{"new.status", "draft"}}, F},
      {"status = 'it''s'", {{"new.status", "it's"}}, T},
      // Numeric when both sides are numbers: 10 > 9 although '10' < '9' as text.
      {"n > 9", {{"new.n", "10"}}, T},
      {"n > '9'", {{"new.n", "10"}}, T},
      {"n = 5", {{"new.n", "5.00"}}, T},
      {"n = 5", {{"new.n", "05"}}, T},
      {"n < -1.5", {{"new.n", "-2"}}, T},
      {"n >= 1e3", {{"new.n", "1000"}}, T},
      {"n = 0", {{"new.n", "-0.0"}}, T},
      {"n = 9007199254740993", {{"new.n", "9007199254740992"}}, F},  // exact, not double
      {"n <= 0.1", {{"new.n", "0.10"}}, T},
      {"n > 0.09", {{"new.n", ".1"}}, T},
      // Text otherwise, byte-wise.
      {"name < 'b'", {{"new.name", "abc"}}, T},
      {"name > 'B'", {{"new.name", "a"}}, T},
      {"v = 10", {{"new.v", "10a"}}, F},
      // PostgreSQL boolean text against TRUE/FALSE.
      {"active = true", {{"new.active", "t"}}, T},
      {"active = TRUE", {{"new.active", "f"}}, F},
      {"active = false", {{"new.active", "f"}}, T},
      {"active <> false", {{"new.active", "t"}}, T},
      {"active", {{"new.active", "t"}}, T},
      {"active", {{"new.active", "f"}}, F},
      {"NOT active", {{"new.active", "f"}}, T},
      {"active IS TRUE", {{"new.active", "t"}}, T},
      {"active IS NOT TRUE", {}, T},
      {"active IS FALSE", {}, F},
      {"active = 't'", {{"new.active", "t"}}, T},
      {"TRUE", {}, T},
      {"FALSE", {}, F},
      {"old.a = new.a", {{"old.a", "1"}, {"new.a", "1.0"}}, T},
      {"old.a <> new.a", {{"old.a", "x"}, {"new.a", "y"}}, T},
      {"\"Weird Col\" = 1", {{"new.Weird Col", "1"}}, T},
      {"new.\"in\" = 1", {{"new.in", "1"}}, T},
      // IN / NOT IN.
      {"status IN ('a', 'b')", {{"new.status", "b"}}, T},
      {"status IN ('a', 'b')", {{"new.status", "c"}}, F},
      {"status NOT IN ('a', 'b')", {{"new.status", "c"}}, T},
      {"n IN (1, 2, 3)", {{"new.n", "2.0"}}, T},
      {"status in ('a')", {{"new.status", "a"}}, T},
      // AND / OR / NOT / parentheses and precedence (AND binds tighter).
      {"a = 1 OR b = 1 AND c = 1", {{"new.a", "1"}, {"new.b", "0"}, {"new.c", "0"}}, T},
      {"(a = 1 OR b = 1) AND c = 1", {{"new.a", "1"}, {"new.b", "0"}, {"new.c", "0"}}, F},
      {"NOT (a = 1)", {{"new.a", "2"}}, T},
      {"not not a = 1", {{"new.a", "1"}}, T},
  };
  for (const auto& c : cases) {
    CAPTURE(c.cond);
    CHECK(int(eval(c.cond, c.values)) == int(c.expect));
  }
}

TEST_CASE("conditions: SQL NULL logic") {
  struct Case {
    std::string cond;
    std::map<std::string, std::string> values;  // absent = NULL
    std::uint8_t expect;
  };
  const Case cases[] = {
      {"x = 1", {}, N},
      {"x <> 1", {}, N},
      {"x = NULL", {{"new.x", "1"}}, N},
      {"NULL = NULL", {}, N},
      {"NOT x = 1", {}, N},
      {"x IS NULL", {}, T},
      {"x IS NOT NULL", {}, F},
      {"x IS NULL", {{"new.x", "1"}}, F},
      {"x = 1 AND y = 1", {{"new.y", "2"}}, F},  // NULL AND FALSE = FALSE
      {"x = 1 AND y = 1", {{"new.y", "1"}}, N},  // NULL AND TRUE = NULL
      {"x = 1 OR y = 1", {{"new.y", "1"}}, T},   // NULL OR TRUE = TRUE
      {"x = 1 OR y = 1", {{"new.y", "2"}}, N},   // NULL OR FALSE = NULL
      {"x IN (1, NULL)", {{"new.x", "1"}}, T},
      {"x IN (2, NULL)", {{"new.x", "1"}}, N},
      {"x NOT IN (2, NULL)", {{"new.x", "1"}}, N},  // the classic NOT IN trap
      {"x NOT IN (2, 3)", {}, N},
      {"NULL", {}, N},
      {"x", {}, N},
      {"x IS NOT FALSE", {}, T},
  };
  for (const auto& c : cases) {
    CAPTURE(c.cond);
    CHECK(int(eval(c.cond, c.values)) == int(c.expect));
  }
}

TEST_CASE("conditions: unknown values may be anything") {
  struct Case {
    std::string cond;
    std::map<std::string, std::string> values;  // "U" = unknown
    std::uint8_t expect;
  };
  const Case cases[] = {
      {"x = 1", {{"new.x", "U"}}, T | F | N},
      {"x IS NULL", {{"new.x", "U"}}, T | F},
      {"x = 1 AND y = 1", {{"new.x", "U"}, {"new.y", "2"}}, F},  // FALSE decides
      {"x = 1 OR y = 1", {{"new.x", "U"}, {"new.y", "1"}}, T},   // TRUE decides
      {"x = 1 OR y = 1", {{"new.x", "U"}, {"new.y", "2"}}, T | F | N},
      {"NOT x = 1", {{"new.x", "U"}}, T | F | N},
      {"x = NULL", {{"new.x", "U"}}, N},  // NULL whatever x is
      {"x", {{"new.x", "U"}}, T | F | N},
      {"x", {{"new.x", "not-a-bool"}}, T | F | N},  // cannot tell: never under-fire
      {"x IN (1, 2)", {{"new.x", "U"}}, T | F | N},
      {"x IS NOT TRUE", {{"new.x", "U"}}, T | F},
  };
  for (const auto& c : cases) {
    CAPTURE(c.cond);
    CHECK(int(eval(c.cond, c.values)) == int(c.expect));
  }
}

TEST_CASE("conditions: unqualified columns read the context image") {
  std::map<std::string, std::string> move{{"old.g", "1"}, {"new.g", "2"}};
  CHECK(eval("g = 1", move, Image::Old) == T);
  CHECK(eval("g = 1", move, Image::New) == F);
  CHECK(eval("old.g = 1", move, Image::New) == T);
  CHECK(eval("new.g = 2", move, Image::Old) == T);
}

TEST_CASE("conditions: parse errors point inside the string") {
  struct Case {
    std::string cond;
    std::size_t offset;
    std::string message;
  };
  const Case cases[] = {
      {"", 0, "empty condition"},
      {"   ", 3, "empty condition"},
      {"x =", 3, "expected a column, string, number"},
      {"x = 'abc", 4, "unterminated string"},
      {"x == 1", 3, "expected a column, string, number"},
      {"x ! 1", 2, "expected '!=' or '<>'"},
      {"(x = 1", 6, "expected ')'"},
      {"x = 1)", 5, "unexpected ')'"},
      {"x = 1 y = 2", 6, "unexpected 'y'"},
      {"x IN 1", 5, "expected '(' after IN"},
      {"x IN (1 2)", 8, "expected ',' or ')' in IN list"},
      {"x IN ()", 6, "expected a column, string, number"},
      {"x NOT 1", 6, "expected IN after NOT"},
      {"x IS 1", 5, "expected NULL, TRUE or FALSE after IS"},
      {"x IS NOT", 8, "expected NULL, TRUE or FALSE after IS NOT"},
      {"5", 0, "expected a comparison"},
      {"'a' AND x", 4, "expected a comparison"},
      {"x = 1 AND", 9, "expected a column"},
      {"AND x = 1", 0, "found keyword and"},
      {"foo.x = 1", 0, "unknown qualifier 'foo'"},
      {"new. = 1", 5, "expected a column name after 'new.'"},
      {"x = 1.2.3", 7, "after number"},
      {"x = 1e", 5, "exponent"},
      {"x = 12abc", 6, "after number"},
      {"x = #", 4, "unexpected '#'"},
      {"\"x = 1", 0, "unterminated quoted name"},
      {"x = - 1", 4, "unexpected '-'"},
      {"x = 1 OR OR", 9, "found keyword or"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.cond);
    Slots slots;
    Condition cond;
    auto err = parse_condition(c.cond, slots, cond);
    REQUIRE(err);
    CHECK(err->offset == c.offset);
    CHECK_MESSAGE(err->message.find(c.message) != std::string::npos, err->message);
  }
}

TEST_CASE("conditions: nesting is limited, not a stack overflow") {
  Slots slots;
  Condition c;
  std::string deep = std::string(5000, '(') + "x = 1" + std::string(5000, ')');
  auto err = parse_condition(deep, slots, c);
  REQUIRE(err);
  CHECK(err->message.find("nested too deeply") != std::string::npos);
  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "NOT ";
  err = parse_condition(nots + "x", slots, c);
  REQUIRE(err);
  std::string ors = "x = 1";
  for (int i = 0; i < 3000; ++i) ors += " OR x = 1";
  err = parse_condition(ors, slots, c);
  REQUIRE(err);
  CHECK(err->message.find("too long") != std::string::npos);
  std::string fine = std::string(30, '(') + "x = 1" + std::string(30, ')');
  CHECK(!parse_condition(fine, slots, c));
}

TEST_CASE("numbers compare exactly") {
  struct Case {
    const char *a, *b;
    std::optional<int> expect;
  };
  const Case cases[] = {
      {"1", "1", 0},
      {"1", "2", -1},
      {"10", "9", 1},
      {"-10", "-9", -1},
      {"0.5", ".5", 0},
      {"1.10", "1.1", 0},
      {"+1", "1", 0},
      {"-0", "0", 0},
      {"1e2", "100", 0},
      {"1.5e1", "15", 0},
      {"abc", "1", std::nullopt},
      {"", "1", std::nullopt},
      {"1.", "1", 0},
      {"-", "1", std::nullopt},
      {"123456789012345678901234567890", "123456789012345678901234567891", -1},
      {"NaN", "1", std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.a);
    CAPTURE(c.b);
    CHECK(compare_numbers(c.a, c.b) == c.expect);
  }
}
