// Smoke test of the test harness itself: real PostgreSQL, redis-server and the pgbust binary.
#include <doctest/doctest.h>

#include <signal.h>

#include "harness.hpp"

using namespace pgbust::test;

TEST_CASE("Postgres: SQL, a logical slot, stop and start on the same port") {
  Postgres pg;
  CHECK(pg.scalar("SHOW wal_level") == "logical");
  pg.exec("CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'a'), (2, NULL)");
  auto rows = pg.rows("SELECT id, v FROM t ORDER BY id");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0] == std::vector<std::string>{"1", "a"});
  CHECK(rows[1] == std::vector<std::string>{"2", ""});
  CHECK(pg.scalar("SELECT v FROM t WHERE id = 2") == std::nullopt);
  CHECK(pg.scalar("SELECT v FROM t WHERE id = 3") == std::nullopt);
  CHECK_THROWS_WITH_AS(pg.exec("SELECT * FROM missing_table"), doctest::Contains("missing_table"),
                       std::runtime_error);

  pg.exec("CREATE PUBLICATION harness_pub FOR TABLE t");
  pg.exec("SELECT pg_create_logical_replication_slot('harness_slot', 'pgoutput')");
  CHECK(pg.scalar("SELECT plugin FROM pg_replication_slots WHERE slot_name = 'harness_slot'") ==
        "pgoutput");

  int port = pg.port();
  pg.stop();
  CHECK_THROWS(pg.scalar("SELECT 1"));
  pg.start();
  CHECK(pg.port() == port);
  CHECK(pg.scalar("SELECT count(*) FROM t") == "2");
  CHECK(pg.scalar("SELECT count(*) FROM pg_replication_slots") == "1");
  pg.restart();
  CHECK(pg.scalar("SELECT 1") == "1");
  // No FATAL other than readiness probes refused during startup and sessions ended by the
  // fast shutdowns above.
  std::string log = pg.log();
  std::size_t fatal = 0;
  for (std::size_t at = log.find("FATAL"); at != std::string::npos;
       at = log.find("FATAL", at + 1)) {
    auto eol = log.find('\n', at);
    std::string line = log.substr(at, eol - at);
    if (line.find("the database system is starting up") == std::string::npos &&
        line.find("terminating connection due to administrator command") == std::string::npos)
      ++fatal;
  }
  INFO(log);
  CHECK(fatal == 0);
}

TEST_CASE("Redis: binary-safe commands, pause/resume, stop/start") {
  Redis r;
  std::string binary_value("a\0b\r\n", 5);
  r.set("k:1", binary_value);
  CHECK(r.command({"GET", "k:1"}) == binary_value);
  CHECK(r.command({"GET", "nope"}) == std::nullopt);
  CHECK(r.command({"INCR", "n"}) == "1");
  r.set("k:2", "x");
  CHECK(r.keys("k:*") == std::vector<std::string>{"k:1", "k:2"});
  CHECK(r.exists("k:2"));
  CHECK_FALSE(r.exists("k:3"));
  CHECK_THROWS_WITH_AS(r.command({"NOSUCHCOMMAND"}), doctest::Contains("NOSUCHCOMMAND"),
                       std::runtime_error);
  CHECK(r.url(3) == "redis://127.0.0.1:" + std::to_string(r.port()) + "/3");
  CHECK(std::filesystem::exists(r.unix_socket()));

  r.pause();
  CHECK_THROWS(r.command({"PING"}));  // times out while stopped
  r.resume();
  CHECK(r.command({"PING"}) == "PONG");

  int port = r.port();
  r.stop();
  CHECK_THROWS(r.command({"PING"}));
  r.start();
  CHECK(r.port() == port);
  CHECK(r.command({"PING"}) == "PONG");
  CHECK_FALSE(r.exists("k:1"));  // no persistence
}

TEST_CASE("run and Daemon drive real processes") {
  RunResult help = run({pgbust_binary(), "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("run") != std::string::npos);

  RunResult cat = run({"cat"}, "hello\n");
  CHECK(cat.exit_code == 0);
  CHECK(cat.output == "hello\n");
  CHECK(run({"sh", "-c", "echo oops >&2; exit 3"}).exit_code == 3);

  Daemon d({"--help"}, {{"PGBUST_HARNESS_TEST", "1"}});
  CHECK(d.wait(30s) == 0);
  CHECK_FALSE(d.running());

  CHECK(d.output().find("run") != std::string::npos);
  CHECK(d.wait_for_output("run", 1s));
  d.signal(SIGTERM);  // harmless once it has exited

  CHECK(eventually([] { return true; }, 10ms));
  CHECK_FALSE(eventually([] { return false; }, 50ms));
}
