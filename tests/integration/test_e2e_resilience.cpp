// End to end through the real daemon: at least once across SIGKILL, Redis outages, PostgreSQL
// restarts and a terminated walsender; an idle slot keeps advancing.
#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <string>
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

namespace {

// The value of an unlabelled metric in the daemon's /metrics, or -1 when absent.
// Resident memory of a process in kB (VmRSS), or -1.
long rss_kb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

TEST_CASE("Redis paused under a long stream of key-less transactions: ack records stay bounded") {
  // Issue 10 #5: while Redis is down, transactions with nothing new to apply (no rule fired,
  // or keys already waiting in the accumulating batch) kept being read, each leaving a record.
  E2E e;
  e.listen = "127.0.0.1:0";
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, grp int); CREATE TABLE unrelated (v int)");
  e.pg.exec(
      "CREATE PROCEDURE stream(n int) LANGUAGE plpgsql AS $$ BEGIN FOR i IN 1..n LOOP "
      "IF i % 2 = 0 THEN INSERT INTO unrelated VALUES (i); "
      "ELSE UPDATE items SET grp = i WHERE id = 2; END IF; COMMIT; END LOOP; END $$");
  e.pg.exec("INSERT INTO items VALUES (1, 0), (2, 0)");
  e.start(
      "version: 1\nrules:\n  - name: item-keys\n    table: items\n"
      "    delete: [\"item:${id}\"]\n",
      "items, unrelated");
  INFO(e.logs());
  const std::string addr = metrics_address(e);
  e.redis.set("item:1", "cached");
  e.redis.set("item:2", "cached");
  e.redis.pause();
  e.pg.exec("UPDATE items SET grp = 1 WHERE id = 1");  // its batch waits for Redis
  constexpr int kStream = 20000;
  const double before = metric(addr, "pgbust_transactions_total");
  e.pg.exec("CALL stream(" + std::to_string(kStream) + ")");
  // The daemon reads the whole stream (nothing adds a batch, so no back-pressure)...
  bool read_all = eventually(
      [&] { return metric(addr, "pgbust_transactions_total") >= before + kStream + 1; }, 60s);
  CHECK(read_all);
  // ...owes every transaction, and holds them in a handful of records.
  CHECK(metric(addr, "pgbust_in_flight_transactions") >= kStream);
  CHECK(metric(addr, "pgbust_ack_records") <= 8);
  MESSAGE("ack records: " << metric(addr, "pgbust_ack_records") << "; daemon RSS with " << kStream
                          << " transactions in flight: " << rss_kb(e.daemon->pid()) << " kB");
  e.redis.resume();
  e.sync(60s);
  CHECK_FALSE(e.redis.exists("item:1"));
  CHECK_FALSE(e.redis.exists("item:2"));
  CHECK(eventually([&] { return metric(addr, "pgbust_in_flight_transactions") == 0; }));
  CHECK(metric(addr, "pgbust_ack_records") == 0);
}

TEST_CASE("Redis full (OOM on bumps): later transactions' deletes still reach Redis") {
  // Issue 10 #6: a bump refused with OOM under maxmemory + noeviction used to stop every
  // later invalidation. Now later deletes go through while the bump batch is retried, and
  // the slot is not confirmed past the failing transaction until it succeeds.
  E2E e;
  e.listen = "127.0.0.1:0";
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, grp int); CREATE TABLE plain (id int)");
  e.start(kRules + std::string(
                       "  - name: plain-keys\n    table: plain\n    delete: [\"plain:${id}\"]\n"),
          "items, plain");
  INFO(e.logs());
  const std::string value(100 * 1024, 'x');
  for (int i = 0; i < 10; ++i) e.redis.set("big:" + std::to_string(i), value);
  e.set_keys({"item:1", "plain:1", "plain:2"});
  e.redis.command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  std::string info = e.redis.command({"INFO", "memory"}).value_or("");
  const long long used = std::stoll(info.substr(info.find("used_memory:") + 12));
  e.redis.command({"CONFIG", "SET", "maxmemory", std::to_string(used - 150 * 1024)});
  REQUIRE_THROWS_WITH(e.redis.set("probe", "v"), doctest::Contains("OOM"));
  auto before = lsn(*e.pg.scalar("SELECT pg_current_wal_lsn()::text"));
  e.pg.exec("INSERT INTO items VALUES (1, 7)");  // delete item:1, bump rev:items:7 (OOM)
  e.pg.exec("INSERT INTO plain VALUES (1)");
  e.pg.exec("INSERT INTO plain VALUES (2)");
  CHECK(eventually([&] { return !e.redis.exists("plain:1") && !e.redis.exists("plain:2"); }, 20s));
  CHECK_FALSE(e.redis.exists("item:1"));  // the failing batch's own deletes went first
  CHECK_FALSE(e.redis.exists("rev:items:7"));
  CHECK(lsn(e.confirmed_lsn()) <= before);
  // Counted by class and command, and the verdict is degraded while the batch fails.
  const std::string addr = metrics_address(e);
  auto scrape = [&](const std::string& path) {
    return run({"curl", "-s", "-w", "\nHTTP %{http_code}", "--max-time", "5",
                "http://" + addr + path})
        .output;
  };
  CHECK(scrape("/metrics")
            .find("pgbust_redis_errors_total{target=\"127.0.0.1:" + std::to_string(e.redis.port()) +
                  "\",class=\"persistent\",command=\"SET NX\"}") != std::string::npos);
  CHECK(eventually([&] { return scrape("/healthz").find("HTTP 503") != std::string::npos; }));
  e.redis.command({"CONFIG", "SET", "maxmemory", "0"});
  CHECK(eventually([&] { return e.redis.exists("rev:items:7"); }, 30s));
  e.sync();
  CHECK(eventually([&] { return lsn(e.confirmed_lsn()) > before; }));
  CHECK(eventually([&] { return scrape("/healthz").find("HTTP 200") != std::string::npos; }));
}

TEST_CASE("Redis password rotated: password_file re-read on reconnect and on reload") {
  E2E e;
  INFO(e.logs());
  auto pw = e.dir.write("redis.pw", "old-secret\n");
  e.redis.command({"CONFIG", "SET", "requirepass", "old-secret"});
  e.redis.auth("old-secret");
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, grp int)");
  e.pg.exec("CREATE TABLE sentinel (id int PRIMARY KEY)");
  e.pg.exec("CREATE PUBLICATION " + e.publication + " FOR TABLE items, sentinel");
  std::string cfg = e.config(e.write_rules(kRules).string());
  const std::string anchor = "command_timeout: 1s";
  auto at = cfg.find(anchor);
  REQUIRE(at != std::string::npos);
  cfg.insert(at + anchor.size(), ", password_file: \"" + pw.string() + "\"");
  e.run_daemon(e.dir.write("pgbust.yaml", cfg).string());
  e.wait_streaming();
  e.sync();

  auto invalidated = [&](int id) {
    const std::string key = "item:" + std::to_string(id);
    e.redis.set(key, "cached");
    e.pg.exec("INSERT INTO items VALUES (" + std::to_string(id) + ", 1)");
    return eventually([&] { return !e.redis.exists(key); }, 20s);
  };
  REQUIRE(invalidated(1));

  // Rotation as an operator does it: the new secret in the file, then on the server, then
  // every connection dropped. The daemon must reconnect with the new one, without a restart.
  e.dir.write("redis.pw", "new-secret\n");
  e.redis.command({"CONFIG", "SET", "requirepass", "new-secret"});
  e.redis.auth("new-secret");
  e.redis.command({"CLIENT", "KILL", "TYPE", "normal"});
  CHECK(invalidated(2));

  // The file gone: a reload says so, naming it, and reconnects keep the last good password.
  std::filesystem::remove(pw);
  e.daemon->signal(SIGHUP);
  CHECK(e.daemon->wait_for_output("password_file '" + pw.string() + "': cannot read"));
  e.redis.command({"CLIENT", "KILL", "TYPE", "normal"});
  CHECK(invalidated(3));
  CHECK(e.daemon->output().find("secret") == std::string::npos);
}

TEST_CASE("host names for PostgreSQL and Redis (localhost) are resolved off the loop and connect") {
  E2E e;
  INFO(e.logs());
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, grp int)");
  e.pg.exec("CREATE TABLE sentinel (id int PRIMARY KEY)");
  e.pg.exec("CREATE PUBLICATION " + e.publication + " FOR TABLE items, sentinel");
  std::string cfg = e.config(e.write_rules(kRules).string());
  for (const std::string from : {"host=127.0.0.1", "redis://127.0.0.1:"}) {
    auto at = cfg.find(from);
    REQUIRE(at != std::string::npos);
    cfg.replace(at, from.size(), from[0] == 'h' ? "host=localhost" : "redis://localhost:");
  }
  e.run_daemon(e.dir.write("pgbust.yaml", cfg).string());
  e.wait_streaming();
  e.sync();
  e.redis.set("item:1", "cached");
  e.pg.exec("INSERT INTO items VALUES (1, 1)");
  CHECK(eventually([&] { return !e.redis.exists("item:1"); }, 20s));
}
