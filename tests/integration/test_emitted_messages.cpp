// End to end: invalidations the application emits itself with
// pg_logical_emit_message(true, 'pgbust', '{...}') are applied after its transaction commits;
// a rolled-back transaction's are not; a malformed or non-transactional message is counted
// and logged with its position, and the stream goes on.
#include <doctest/doctest.h>

#include "e2e.hpp"
#include "pgbust/pg/libpq.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(version: 1
rules:
  - name: item-keys
    table: items
    delete: ["item:${id}"]
)";

std::string emit(const std::string& json, bool transactional = true) {
  return std::string("SELECT pg_logical_emit_message(") + (transactional ? "true" : "false") +
         ", 'pgbust', '" + json + "')";
}

std::uint64_t lsn(const std::string& text) {
  std::uint64_t v = 0;
  REQUIRE(pgbust::pg::parse_lsn(text, v));
  return v;
}

}  // namespace

TEST_CASE("emitted messages: applied after commit, not after rollback; bad ones are counted") {
  E2E e;
  e.listen = "127.0.0.1:0";
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, v text)");
  e.start(kRules, "items");
  INFO(e.logs());
  const std::string addr = metrics_address(e);
  e.set_keys({"agg:1", "agg:2", "search:a:1", "search:a:2", "search:b:1", "item:1", "rb:1",
              "other:1", "late:1"});
  e.redis.command({"SET", "rev:x", "5"});

  // A transaction that writes a row and emits the keys derived from data pgbust cannot see.
  e.pg.exec("BEGIN; INSERT INTO items VALUES (1, 'a'); " +
            emit(R"({"delete": ["agg:1", "agg:2"], "delete_pattern": ["search:a:*"],)"
                 R"( "bump": ["rev:x"]})") +
            "; COMMIT");
  // A rolled-back transaction's message never reaches the stream.
  e.pg.exec("BEGIN; " + emit(R"({"delete": ["rb:1"]})") + "; ROLLBACK");
  // Another consumer's prefix is not ours.
  e.pg.exec("SELECT pg_logical_emit_message(true, 'other', '{\"delete\": [\"other:1\"]}')");
  e.sync();
  CHECK_FALSE(e.redis.exists("item:1"));
  CHECK_FALSE(e.redis.exists("agg:1"));
  CHECK_FALSE(e.redis.exists("agg:2"));
  CHECK_FALSE(e.redis.exists("search:a:1"));
  CHECK_FALSE(e.redis.exists("search:a:2"));
  CHECK(e.redis.exists("search:b:1"));
  CHECK(e.redis.exists("rb:1"));
  CHECK(e.redis.exists("other:1"));
  auto rev = e.redis.command({"GET", "rev:x"});
  REQUIRE(rev);
  CHECK(std::stoll(*rev) > 5);

  // Malformed and non-transactional messages are counted, logged with their LSN, and the
  // stream goes on: the next transaction's message is applied.
  e.pg.exec("BEGIN; " + emit(R"({"delete": ["late:1")") + "; COMMIT");
  e.pg.exec(emit(R"({"delete": ["late:1"]})", false));
  e.pg.exec("BEGIN; " + emit(R"({"delete": "late:1"})") + "; COMMIT");
  e.pg.exec("BEGIN; " + emit(R"({"delete": ["late:1"]})") + "; COMMIT");
  e.sync();
  CHECK_FALSE(e.redis.exists("late:1"));
  CHECK(eventually([&] {
    return metric(addr, "pgbust_emitted_messages_total") == 2 &&
           metric(addr, "pgbust_emitted_messages_rejected_total{reason=\"json\"}") == 1 &&
           metric(addr, "pgbust_emitted_messages_rejected_total{reason=\"shape\"}") == 1 &&
           metric(addr, "pgbust_emitted_messages_rejected_total{reason=\"non_transactional\"}") ==
               1;
  }));
  const std::string out = e.daemon->output();
  CHECK(out.find("ignored the application message at 0/") != std::string::npos);
  CHECK(out.find("(json): line 1 column") != std::string::npos);
  // The daemon is still streaming from the same slot: nothing was fatal.
  CHECK(e.daemon->running());
}

TEST_CASE("emitted messages: the position is confirmed only once Redis applied them") {
  E2E e;
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, v text)");
  e.start(kRules, "items");
  INFO(e.logs());
  e.set_keys({"agg:9"});
  e.redis.pause();
  const std::uint64_t before = lsn(e.pg.scalar("SELECT pg_current_wal_insert_lsn()::text").value());
  e.pg.exec("BEGIN; " + emit(R"({"delete": ["agg:9"]})") + "; COMMIT");
  const std::uint64_t after = lsn(e.pg.scalar("SELECT pg_current_wal_flush_lsn()::text").value());
  // Wait until the walsender sent the transaction and then heard a status update from
  // pgbust: that update must not confirm it while Redis does not answer.
  REQUIRE(eventually([&] {
    return e.pg.scalar("SELECT (sent_lsn >= '" + pgbust::pg::format_lsn(after) +
                       "')::text FROM pg_stat_replication") == std::optional<std::string>("true");
  }));
  const std::string sent_at = e.pg.scalar("SELECT clock_timestamp()::text").value();
  REQUIRE(eventually([&] {
    return e.pg.scalar("SELECT (reply_time > '" + sent_at + "')::text FROM pg_stat_replication") ==
           std::optional<std::string>("true");
  }));
  CHECK(lsn(e.confirmed_lsn()) <= before);
  e.redis.resume();
  CHECK(eventually([&] { return !e.redis.exists("agg:9"); }, 30s));
  CHECK(eventually([&] { return lsn(e.confirmed_lsn()) >= after; }, 30s));
}
