// End to end through the real daemon: at least once across SIGKILL, Redis outages, PostgreSQL
// restarts and a terminated walsender; an idle slot keeps advancing.
#include <doctest/doctest.h>

#include <csignal>
#include <thread>

#include "e2e.hpp"
#include "pgbust/pg/libpq.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(version: 1
rules:
  - name: item-keys
    table: items
    delete: ["item:${id}"]
    bump: ["rev:items:${grp}"]
)";

struct Fixture {
  E2E env;
  Fixture() {
    env.pg.exec("CREATE TABLE items (id int PRIMARY KEY, grp int); CREATE TABLE unrelated (v int)");
    env.start(kRules, "items");
  }
};

std::uint64_t lsn(const std::string& text) {
  std::uint64_t v = 0;
  REQUIRE(pgbust::pg::parse_lsn(text, v));
  return v;
}

void insert_range(const E2E& e, int from, int to, int per_txn) {
  for (int i = from; i <= to; i += per_txn) {
    int last = std::min(to, i + per_txn - 1);
    e.pg.exec("INSERT INTO items SELECT g, g % 10 FROM generate_series(" + std::to_string(i) +
              ", " + std::to_string(last) + ") g");
  }
}

// Runs `sql` in a transaction and returns where its commit record starts (the WAL insert
// position just before COMMIT). The slot may be confirmed up to there even before the
// transaction's invalidations are applied: the walsender itself reports positions inside a
// transaction it is still decoding, and a transaction committing past the confirmed position
// is streamed again. Past it, the commit would be acknowledged unapplied (promise 2).
std::uint64_t commit_start(const E2E& e, const std::string& sql) {
  auto c = pgbust::pg::connect(e.pg.conninfo());
  pgbust::pg::exec(c.get(), "BEGIN", "begin");
  pgbust::pg::exec(c.get(), sql, "running SQL");
  auto r = pgbust::pg::exec(c.get(), "SELECT pg_current_wal_insert_lsn()::text", "reading the LSN");
  std::uint64_t at = lsn(PQgetvalue(r.get(), 0, 0));
  pgbust::pg::exec(c.get(), "COMMIT", "commit");
  return at;
}

std::vector<std::string> item_keys(int from, int to) {
  std::vector<std::string> keys;
  for (int i = from; i <= to; ++i) keys.push_back("item:" + std::to_string(i));
  return keys;
}

int remaining(const E2E& e, const std::vector<std::string>& keys) {
  int n = 0;
  for (const auto& k : keys) n += e.redis.exists(k) ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("at least once: SIGKILL in the middle of a stream, then restart") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  auto keys = item_keys(1, 3000);
  e.set_keys(keys);
  std::thread writer([&] { insert_range(e, 1, 3000, 10); });
  // Kill once some, but not all, of the stream has been applied.
  bool some = eventually([&] { return remaining(e, {keys.begin(), keys.begin() + 200}) < 200; });
  e.daemon->signal(SIGKILL);
  writer.join();
  CHECK(some);
  CHECK(e.daemon->wait(10s).has_value());
  e.restart_daemon();
  e.sync(60s);
  CHECK(remaining(e, keys) == 0);
}

TEST_CASE("Redis paused while changes arrive: nothing confirmed early, everything applied after") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  auto keys = item_keys(1, 500);
  e.set_keys(keys);
  e.redis.pause();
  auto before = commit_start(e, "INSERT INTO items SELECT g, g % 10 FROM generate_series(1, 50) g");
  insert_range(e, 51, 500, 50);
  // Give the daemon time to try, time out, and send standby status updates.
  std::this_thread::sleep_for(4s);
  CHECK(lsn(e.confirmed_lsn()) <= before);
  e.redis.resume();
  e.sync(60s);
  CHECK(remaining(e, keys) == 0);
  // Confirmation follows the Redis work; the standby status update comes a moment later.
  CHECK(eventually([&] { return lsn(e.confirmed_lsn()) > before; }));
}

TEST_CASE("Redis stopped and restarted: queued work is applied once it is back") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  e.redis.stop();
  auto before = commit_start(e, "INSERT INTO items VALUES (1, 3)");
  std::this_thread::sleep_for(3s);
  CHECK(lsn(e.confirmed_lsn()) <= before);
  e.redis.start();  // empty: no persistence
  // The bump for the committed insert reaches the new server once pgbust reconnects.
  CHECK(eventually([&] { return e.redis.exists("rev:items:3"); }, 30s));
  e.sync();
}

TEST_CASE("PostgreSQL restarted, and the walsender terminated: pgbust reconnects") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  e.set_keys({"item:1", "item:2"});
  e.pg.exec(
      "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
      "WHERE slot_name = '" +
      e.slot + "' AND active_pid IS NOT NULL");
  e.pg.exec("INSERT INTO items VALUES (1, 1)");
  e.sync(60s);
  CHECK_FALSE(e.redis.exists("item:1"));

  e.pg.restart();
  e.pg.exec("INSERT INTO items VALUES (2, 1)");
  e.sync(60s);
  CHECK_FALSE(e.redis.exists("item:2"));
  CHECK(e.daemon->running());
}

TEST_CASE("an idle slot keeps advancing with unrelated write traffic") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  auto start = lsn(e.confirmed_lsn());
  e.pg.exec("INSERT INTO unrelated SELECT generate_series(1, 20000)");
  auto end = lsn(*e.pg.scalar("SELECT pg_current_wal_lsn()::text"));
  REQUIRE(end > start);
  CHECK(eventually([&] { return lsn(e.confirmed_lsn()) >= end; }, 30s));
}
