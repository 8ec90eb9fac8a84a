// The RESP codec under the Redis target: argv command formatting (binary-safe) and the
// incremental reply reader (replies split across reads, several per read, nesting, errors).
#include <doctest/doctest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/redis.hpp"

using pgbust::redis::detail::append_command;
using pgbust::redis::detail::Reader;
using pgbust::redis::detail::Reply;
using namespace std::string_literals;

TEST_CASE("commands are formatted in argv form, binary-safe") {
  struct Case {
    std::vector<std::string> argv;
    std::string wire;
  };
  const Case cases[] = {
      {{"UNLINK", "a"}, "*2\r\n$6\r\nUNLINK\r\n$1\r\na\r\n"},
      {{"SET", "k", "1700000000000000", "NX"},
       "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$16\r\n1700000000000000\r\n$2\r\nNX\r\n"},
      // Spaces, CRLF, NUL, glob characters and an empty argument go through untouched: a row
      // value can never split into extra arguments or a second command.
      {{"UNLINK", "a b", "x\r\nFLUSHALL\r\n", "nul\0byte"s, "a\\*b", ""},
       "*6\r\n$6\r\nUNLINK\r\n$3\r\na b\r\n$13\r\nx\r\nFLUSHALL\r\n\r\n$8\r\nnul\0byte\r\n"
       "$4\r\na\\*b\r\n$0\r\n\r\n"s},
      {{"PUBLISH", "ch", "{\"keys\":[\"é\"]}"},
       "*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$15\r\n{\"keys\":[\"é\"]}\r\n"},
  };
  for (const Case& c : cases) {
    std::vector<std::string_view> views(c.argv.begin(), c.argv.end());
    std::string out = "prefix";
    append_command(out, views);
    CHECK(out == "prefix" + c.wire);
  }
  std::string two;
  append_command(two, {"SCAN", "0", "MATCH", "a*", "COUNT", "1000"});
  append_command(two, {"INCR", "rev"});
  CHECK(two ==
        "*6\r\n$4\r\nSCAN\r\n$1\r\n0\r\n$5\r\nMATCH\r\n$2\r\na*\r\n$5\r\nCOUNT\r\n$4\r\n1000\r\n"
        "*2\r\n$4\r\nINCR\r\n$3\r\nrev\r\n");
}

namespace {
// Everything the reader yields after feeding `chunks` one by one, rendered as text.
std::string render(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
      return "str:" + std::string(r->str, r->len);
    case REDIS_REPLY_STATUS:
      return "status:" + std::string(r->str, r->len);
    case REDIS_REPLY_ERROR:
      return "err:" + std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return "int:" + std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_ARRAY: {
      std::string s = "[";
      for (std::size_t i = 0; i < r->elements; ++i) s += (i ? "," : "") + render(r->element[i]);
      return s + "]";
    }
  }
  return "?";
}

std::vector<std::string> read_all(const std::vector<std::string>& chunks) {
  Reader reader;
  std::vector<std::string> out;
  for (const std::string& c : chunks) {
    reader.feed(c);
    while (Reply r = reader.next()) out.push_back(render(r.get()));
  }
  return out;
}

const std::string kStream =
    "+OK\r\n"
    ":42\r\n"
    "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    "$-1\r\n"
    "$5\r\nhe\r\no\r\n"
    "*2\r\n$4\r\n1792\r\n*3\r\n$3\r\nk:1\r\n$3\r\nk:2\r\n$0\r\n\r\n"
    "*2\r\n$1\r\n0\r\n*0\r\n"
    ":-3\r\n";
const std::vector<std::string> kExpected = {
    "status:OK",
    "int:42",
    "err:WRONGTYPE Operation against a key holding the wrong kind of value",
    "nil",
    "str:he\r\no",
    "[str:1792,[str:k:1,str:k:2,str:]]",
    "[str:0,[]]",
    "int:-3",
};
}  // namespace

TEST_CASE("the reader yields the same replies however the bytes are split") {
  SUBCASE("all at once") {
    CHECK(read_all({kStream}) == kExpected);
  }
  SUBCASE("one byte per read") {
    std::vector<std::string> bytes;
    for (char c : kStream) bytes.emplace_back(1, c);
    CHECK(read_all(bytes) == kExpected);
  }
  SUBCASE("every split point in two reads") {
    for (std::size_t i = 0; i <= kStream.size(); ++i) {
      CAPTURE(i);
      CHECK(read_all({kStream.substr(0, i), kStream.substr(i)}) == kExpected);
    }
  }
  SUBCASE("split inside a CRLF and inside a length") {
    CHECK(read_all({"$5\r\nhe\r", "\no\r", "\n:4", "2\r\n"}) ==
          std::vector<std::string>{"str:he\r\no", "int:42"});
  }
}

TEST_CASE("an incomplete reply yields nothing until the rest arrives") {
  Reader reader;
  reader.feed("*2\r\n$1\r\n0\r\n*1\r\n$3\r\nab");
  CHECK_FALSE(reader.next());
  reader.feed("c\r\n");
  Reply r = reader.next();
  REQUIRE(r);
  CHECK(render(r.get()) == "[str:0,[str:abc]]");
  CHECK_FALSE(reader.next());
}

TEST_CASE("a large SCAN page split at arbitrary points parses whole") {
  std::string page = "*2\r\n$1\r\n0\r\n*2000\r\n";
  std::string expected = "[str:0,[";
  for (int i = 0; i < 2000; ++i) {
    std::string k = "key:" + std::to_string(i);
    page += "$" + std::to_string(k.size()) + "\r\n" + k + "\r\n";
    expected += (i ? ",str:" : "str:") + k;
  }
  expected += "]]";
  std::vector<std::string> chunks;
  for (std::size_t i = 0; i < page.size(); i += 997) chunks.push_back(page.substr(i, 997));
  CHECK(read_all(chunks) == std::vector<std::string>{expected});
}

TEST_CASE("a protocol error is a ConnectionError naming hiredis's text") {
  Reader reader;
  reader.feed("+OK\r\n!bogus\r\n");
  CHECK(reader.next());
  CHECK_THROWS_WITH_AS(reader.next(), doctest::Contains("protocol error"), pgbust::ConnectionError);
}
