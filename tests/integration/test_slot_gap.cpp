// Promise 8 for the logical source: a replication slot that vanished while pgbust was down
// (dropped by a DBA, invalidated past max_slot_wal_keep_size) is a gap. pgbust re-creates
// the slot and widens every rule once, at error level, or refuses with on_gap: fail; it
// never re-creates the slot silently at the current WAL end.
#include <doctest/doctest.h>

#include <signal.h>

#include "e2e.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(version: 1
rules:
  - name: items
    table: items
    delete: ["item:${id}", "grp:${grp}"]
    publish: invalidations
)";

struct Fixture : E2E {
  Fixture() {
    pg.exec("CREATE TABLE items (id int PRIMARY KEY, grp int); INSERT INTO items VALUES (1, 7)");
  }

  void stop() {
    daemon->signal(SIGTERM);
    auto code = daemon->wait(30s);
    INFO(logs());
    REQUIRE(code == 0);
  }

  void drop_slot() { pg.exec("SELECT pg_drop_replication_slot('" + slot + "')"); }

  std::optional<std::string> slots() const {
    return pg.scalar("SELECT count(*)::text FROM pg_replication_slots");
  }
};

}  // namespace

TEST_CASE("a slot dropped while pgbust was down: re-created, every rule widens once, counted") {
  Fixture env;
  env.listen = "127.0.0.1:0";
  env.start(kRules, "items");
  CHECK(env.daemon->output().find("first start: replication slot \"pgbust_e2e\"") !=
        std::string::npos);
  CHECK(env.daemon->output().find("are not covered") != std::string::npos);
  env.stop();

  // While pgbust is down: the slot goes, and a change commits that no slot keeps.
  env.drop_slot();
  env.pg.exec("UPDATE items SET grp = 8 WHERE id = 1");
  env.set_keys({"item:1", "grp:7", "grp:8", "unrelated:1"});

  env.run_daemon((env.dir.path() / "pgbust.yaml").string());
  env.wait_streaming();
  INFO(env.logs());
  const std::string addr = metrics_address(env);
  // The missed update's keys go: every rule of every table widened to its patterns.
  CHECK(eventually([&] { return !env.redis.exists("item:1"); }, 30s));
  CHECK(eventually([&] { return !env.redis.exists("grp:7"); }, 30s));
  CHECK(eventually([&] { return !env.redis.exists("grp:8"); }, 30s));
  CHECK(env.redis.exists("unrelated:1"));
  const std::string out = env.daemon->output();
  CHECK(out.find("error: logical") != std::string::npos);
  CHECK(out.find("replication slot \"pgbust_e2e\" on 127.0.0.1:" + std::to_string(env.pg.port())) !=
        std::string::npos);
  CHECK(out.find("vanished (dropped, or invalidated and removed) after pgbust confirmed") !=
        std::string::npos);
  // Closed once applied; later changes flow as usual and the verdict is healthy again.
  CHECK(env.daemon->wait_for_output("gap closed", 30s));
  CHECK(metric(addr, "pgbust_widenings_total{reason=\"slot_gap\"}") >= 1);
  env.sync();
  CHECK(env.daemon->wait_for_output("status: healthy", 30s));
  auto record = env.dir.path() / "state" / "pgbust_e2e.slot";
  REQUIRE(std::filesystem::exists(record));

  // A restart after the gap closed is no gap.
  env.stop();
  env.redis.set("item:1", "cached");
  env.run_daemon((env.dir.path() / "pgbust.yaml").string());
  env.wait_streaming();
  env.sync();
  CHECK(env.redis.exists("item:1"));
  CHECK(env.daemon->output().find("gap:") == std::string::npos);
}

TEST_CASE("on_gap: fail refuses to stream from a re-created slot, and says how to go on") {
  Fixture env;
  env.logical_options = ", on_gap: fail";
  env.start(kRules, "items");
  env.stop();
  env.drop_slot();
  env.run_daemon((env.dir.path() / "pgbust.yaml").string());
  INFO(env.logs());
  CHECK(env.daemon->wait_for_output("on_gap: fail, so pgbust will not stream", 30s));
  CHECK(env.daemon->wait_for_output("Run pgbust flush", 5s));
  CHECK(env.slots() == "0");  // not re-created
}
