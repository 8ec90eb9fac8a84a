// The `stream:` action through the real daemon: one XADD per committed transaction, carrying
// the same JSON as publish, readable from a saved ID after the reader was away.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "e2e.hpp"

using namespace pgbust::test;

namespace {

// XRANGE/XREAD output flattened by the harness: id, "message", json, id, ...
struct Entry {
  std::string id, field, json;
};
std::vector<Entry> entries(const std::optional<std::string>& flat) {
  std::vector<std::string> parts;
  std::string s = flat.value_or("");
  for (std::size_t at = 0; !s.empty() && at <= s.size();) {
    auto nl = s.find('\n', at);
    parts.push_back(s.substr(at, nl == std::string::npos ? std::string::npos : nl - at));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  std::vector<Entry> out;
  for (std::size_t i = 0; i + 2 < parts.size(); i += 3)
    out.push_back({parts[i], parts[i + 1], parts[i + 2]});
  return out;
}

}  // namespace

TEST_CASE("stream: one entry per transaction with the publish JSON, resumable by ID") {
  E2E e;
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, grp int)");
  e.start(R"(version: 1
rules:
  - name: items
    table: items
    delete: ["item:${id}"]
    bump: ["rev:grp:${grp}"]
    stream: "inval:items"
)",
          "items", "");
  e.pg.exec("BEGIN; INSERT INTO items VALUES (1, 7), (2, 7); COMMIT");
  e.sync();
  auto first = entries(e.redis.command({"XRANGE", "inval:items", "-", "+"}));
  INFO(e.logs());
  REQUIRE(first.size() == 1);  // one transaction, one entry (two rows)
  CHECK(first[0].field == "message");
  CHECK(first[0].json.find("\"source\":\"logical\"") != std::string::npos);
  CHECK(first[0].json.find("\"tables\":[\"public.items\"],\"keys\":[\"item:1\",\"item:2\"],"
                           "\"patterns\":[],\"revisions\":[\"rev:grp:7\"],\"truncated\":false}") !=
        std::string::npos);
  // A reader that saved the first ID gets exactly what came after it.
  e.pg.exec("UPDATE items SET grp = 8 WHERE id = 2");
  e.pg.exec("DELETE FROM items WHERE id = 1");
  e.sync();
  // XREAD from the saved ID (its reply starts with the stream's name).
  auto read = e.redis.command({"XREAD", "COUNT", "10", "STREAMS", "inval:items", first[0].id});
  REQUIRE(read);
  REQUIRE(read->starts_with("inval:items\n"));
  auto after = entries(read->substr(std::string("inval:items\n").size()));
  REQUIRE(after.size() == 2);
  CHECK(after[0].json.find("\"keys\":[\"item:2\"]") != std::string::npos);
  CHECK(after[0].json.find("\"rev:grp:8\"") != std::string::npos);
  CHECK(after[1].json.find("\"keys\":[\"item:1\"]") != std::string::npos);
  CHECK(e.redis.command({"XLEN", "inval:items"}) == std::optional<std::string>("3"));
}
