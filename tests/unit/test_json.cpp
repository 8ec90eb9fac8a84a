// The strict JSON reader and the quoting helper.
#include <doctest/doctest.h>

#include <string>

#include "pgbust/core/json.hpp"

using pgbust::json::ParseError;
using pgbust::json::Value;
namespace json = pgbust::json;

TEST_CASE("json: values of every type") {
  Value v = json::parse(R"( {"a": 1, "b": -2.50e+3, "c": "x", "d": true, "e": false, "f": null,
                             "g": [1, [2], {}], "h": {"i": []}} )");
  REQUIRE(v.is_object());
  REQUIRE(v.members().size() == 8);
  CHECK(v.members()[0].first == "a");  // document order
  CHECK(v.find("a")->text() == "1");
  CHECK(v.find("b")->is_number());
  CHECK(v.find("b")->text() == "-2.50e+3");  // source text kept
  CHECK(v.find("b")->as_double() == doctest::Approx(-2500));
  CHECK(v.find("c")->text() == "x");
  CHECK(v.find("d")->as_bool());
  CHECK(!v.find("e")->as_bool());
  CHECK(v.find("f")->is_null());
  CHECK(v.find("g")->items().size() == 3);
  CHECK(v.find("g")->items()[1].items()[0].text() == "2");
  CHECK(v.find("h")->find("i")->is_array());
  CHECK(v.find("zzz") == nullptr);
  CHECK(json::parse("12345678901234567890").text() == "12345678901234567890");
  CHECK(json::parse("\"\"").text().empty());
  CHECK(json::parse("0").text() == "0");
  CHECK(json::parse("-0.0").text() == "-0.0");
}

TEST_CASE("json: string escapes") {
  struct Case {
    const char* json;
    std::string text;
  };
  const Case cases[] = {
      {R"("a\"b")", "a\"b"},
      {R"("\\ \/ \b \f \n \r \t")", "\\ / \b \f \n \r \t"},
      {R"("\u0041\u00e9\u20ac")", "A\xc3\xa9\xe2\x82\xac"},
      {R"("\ud83d\ude00")", "\xf0\x9f\x98\x80"},  // U+1F600 from a surrogate pair
      {R"("\uD834\uDD1E")", "\xf0\x9d\x84\x9e"},  // U+1D11E, upper-case hex
      {"\"h\xc3\xa9llo \xe2\x82\xac\"", "h\xc3\xa9llo \xe2\x82\xac"},  // raw UTF-8 passes
      {R"("\u0000")", std::string(1, '\0')},
  };
  for (const auto& c : cases) {
    CAPTURE(c.json);
    CHECK(json::parse(c.json).text() == c.text);
  }
}

TEST_CASE("json: errors name the position") {
  struct Case {
    std::string json;
    std::size_t offset;
    int line, column;
    const char* message;
  };
  const Case cases[] = {
      {"", 0, 1, 1, "expected a JSON value"},
      {"{", 1, 1, 2, "expected a string key"},
      {"{\"a\" 1}", 5, 1, 6, "expected ':'"},
      {"{\"a\":1,}", 7, 1, 8, "expected a string key"},
      {"[1,]", 3, 1, 4, "expected a JSON value"},
      {"[1 2]", 3, 1, 4, "expected ',' or ']'"},
      {"{\"a\":1}\n x", 9, 2, 2, "unexpected data after"},
      {"01", 1, 1, 2, "leading zeros"},
      {"1.", 2, 1, 3, "digit after '.'"},
      {"1e", 2, 1, 3, "exponent"},
      {"-", 1, 1, 2, "expected a digit"},
      {"tru", 0, 1, 1, "expected a JSON value"},
      {"\"abc", 4, 1, 5, "unterminated string"},
      {"\"a\nb\"", 2, 1, 3, "raw control character"},
      {"\"\\x\"", 1, 1, 2, "invalid escape"},
      {"\"\\u12\"", 3, 1, 4, "hex digits"},
      {"\"\\u12G4\"", 5, 1, 6, "hex digit"},
      {"\"\\ud83d\"", 1, 1, 2, "high surrogate"},
      {"\"\\ud83d\\u0041\"", 1, 1, 2, "high surrogate"},
      {"\"\\ude00\"", 1, 1, 2, "lone low surrogate"},
      {"\"\xff\"", 1, 1, 2, "invalid UTF-8"},
      {"\"\xc0\xaf\"", 1, 1, 2, "invalid UTF-8"},      // overlong '/'
      {"\"\xed\xa0\x80\"", 1, 1, 2, "invalid UTF-8"},  // encoded surrogate
      {"{\"a\":1,\n\"a\":2}", 8, 2, 1, "duplicate object key"},
      {"nul", 0, 1, 1, "expected a JSON value"},
      {"[\"a\" , {\"b\":}]", 12, 1, 13, "expected a JSON value"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.json);
    try {
      json::parse(c.json);
      FAIL("parsed");
    } catch (const ParseError& e) {
      CHECK(e.offset() == c.offset);
      CHECK(e.line() == c.line);
      CHECK(e.column() == c.column);
      CHECK_MESSAGE(e.message().find(c.message) != std::string::npos, e.message());
      CHECK(std::string(e.what()).find("line " + std::to_string(c.line)) == 0);
    }
  }
}

TEST_CASE("json: options") {
  json::ParseOptions lax;
  lax.allow_duplicate_keys = true;
  CHECK(json::parse(R"({"a":1,"a":2})", lax).members().size() == 2);
  std::string deep(300, '[');
  deep += std::string(300, ']');
  CHECK_THROWS_AS(json::parse(deep), ParseError);
  json::ParseOptions deeper;
  deeper.max_depth = 400;
  CHECK(json::parse(deep, deeper).is_array());
}

TEST_CASE("json: quote") {
  struct Case {
    std::string in, out;
  };
  const Case cases[] = {
      {"", "\"\""},
      {"plain", "\"plain\""},
      {"a\"b\\c", R"("a\"b\\c")"},
      {"\n\r\t\b\f", R"("\n\r\t\b\f")"},
      {std::string("\x01\x1f", 2), R"("\u0001\u001f")"},
      {std::string(1, '\0'), R"("\u0000")"},
      {"h\xc3\xa9 \xf0\x9f\x98\x80", "\"h\xc3\xa9 \xf0\x9f\x98\x80\""},
      {"bad\xff", R"("bad\u00ff")"},
      {"/", "\"/\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(json::quote(c.in) == c.out);
    // Quoting then parsing gives the input back whenever the input is valid UTF-8.
    if (c.in.find('\xff') == std::string::npos)
      CHECK(json::parse(json::quote(c.in)).text() == c.in);
  }
}
