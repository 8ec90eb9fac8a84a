// `pgbust run --dry-run` (shadow mode) against real PostgreSQL and Redis: it evaluates the
// rules on the live stream and counts (and traces) the commands it would send, while Redis
// stays untouched and the real slot's confirmed_flush_lsn does not move; its temporary slot
// is gone once it exits.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>

#include "e2e.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(version: 1
rules:
  - name: item-keys
    table: items
    delete: ["item:${id}"]
    bump: ["rev:items"]
  - name: item-values
    table: items
    delete: ["value:${v}"]
    stream: item-changes
)";

std::string count(const E2E& e, const std::string& where) {
  return e.pg.scalar("SELECT count(*)::text FROM pg_replication_slots WHERE " + where)
      .value_or("?");
}

// Starts the live daemon once (it creates the real slot), then stops it: the dry run runs
// beside where it would run, against the same config.
struct Fixture {
  E2E e;
  std::string config_path;
  std::string addr;
  Fixture() {
    e.listen = "127.0.0.1:0";
    e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, v text)");
    e.start(kRules, "items");
    e.daemon.reset();
    config_path = (e.dir.path() / "pgbust.yaml").string();
  }
  void dry_run(std::vector<std::string> extra) {
    std::vector<std::string> args{"run", "--config", config_path, "--dry-run"};
    args.insert(args.end(), extra.begin(), extra.end());
    e.daemon = std::make_unique<Daemon>(args);
    addr = metrics_address(e);
  }
  double commands(const std::string& rule, const std::string& command) {
    return metric(
        addr, "pgbust_dry_run_commands_total{rule=\"" + rule + "\",command=\"" + command + "\"}");
  }
};

}  // namespace

TEST_CASE("dry run from a temporary slot: counts and traces, Redis and the real slot untouched") {
  Fixture f;
  auto& e = f.e;
  INFO(e.logs());
  const std::string real_lsn = e.confirmed_lsn();
  const auto trace = e.dir.path() / "trace.jsonl";
  f.dry_run({"--trace", trace.string()});
  REQUIRE(eventually([&] { return count(e, "temporary AND active") == "1"; }, 30s));
  e.set_keys({"item:1", "item:2", "item:3"});
  // One transaction at a time: coalesced batches would dedupe keys across transactions.
  // Each rule's commands under its own name: item-values' old value is unknown under
  // REPLICA IDENTITY DEFAULT, so its UPDATE widens to a pattern; its stream gets one entry
  // per transaction.
  auto step = [&](const std::string& sql, double unlinks, double bumps, double value_unlinks,
                  double value_patterns, double xadds) {
    e.pg.exec(sql);
    bool ok = eventually([&] {
      return f.commands("item-keys", "UNLINK") == unlinks &&
             f.commands("item-keys", "INCR") == bumps &&
             f.commands("item-values", "UNLINK") == value_unlinks &&
             std::max(0.0, f.commands("item-values", "SCAN+UNLINK")) == value_patterns &&
             f.commands("item-values", "XADD") == xadds;
    });
    if (!ok)
      MESSAGE(run({"curl", "-s", "--max-time", "5", "http://" + f.addr + "/metrics"}).output);
    return ok;
  };
  REQUIRE(step("INSERT INTO items VALUES (1, 'a'), (2, 'b')", 2, 1, 2, 0, 1));
  REQUIRE(step("UPDATE items SET v = 'c' WHERE id = 1", 3, 2, 3, 1, 2));
  REQUIRE(step("INSERT INTO items VALUES (3, 'd')", 4, 3, 4, 1, 3));
  CHECK(f.commands("item-values", "INCR") == -1);  // absent: that rule bumps nothing
  CHECK(f.commands("item-keys", "XADD") == -1);
  CHECK(e.redis.exists("item:1"));
  CHECK(e.redis.exists("item:2"));
  CHECK(e.redis.exists("item:3"));
  CHECK_FALSE(e.redis.exists("rev:items"));
  CHECK(e.confirmed_lsn() == real_lsn);
  std::ifstream in(trace);
  std::string line, all;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    all += line + "\n";
  }
  CHECK(lines == 15);
  CHECK(all.find("{\"command\":\"UNLINK\",\"key\":\"item:3\",\"rule\":\"item-keys\"}\n") !=
        std::string::npos);
  CHECK(all.find("{\"command\":\"INCR\",\"key\":\"rev:items\",\"rule\":\"item-keys\"}\n") !=
        std::string::npos);
  CHECK(all.find("{\"command\":\"SCAN+UNLINK\",\"key\":\"value:*\",\"rule\":\"item-values\"}\n") !=
        std::string::npos);
  CHECK(all.find("{\"command\":\"XADD\",\"key\":\"item-changes\",\"rule\":\"item-values\",") !=
        std::string::npos);
  e.daemon.reset();  // killed: the server drops the temporary slot with the connection
  CHECK(eventually([&] { return count(e, "temporary") == "0"; }));
  CHECK(e.confirmed_lsn() == real_lsn);
}

TEST_CASE("dry run from the real slot: it streams but never confirms") {
  Fixture f;
  auto& e = f.e;
  INFO(e.logs());
  const std::string real_lsn = e.confirmed_lsn();
  f.dry_run({"--slot", e.slot});
  REQUIRE(
      eventually([&] { return count(e, "slot_name = '" + e.slot + "' AND active") == "1"; }, 30s));
  e.set_keys({"item:7"});
  e.pg.exec("INSERT INTO items VALUES (7, 'a')");
  REQUIRE(eventually([&] { return f.commands("item-keys", "UNLINK") == 1; }));
  // A standby status update after the transaction was applied confirms nothing.
  const std::string applied_at = e.pg.scalar("SELECT clock_timestamp()::text").value();
  REQUIRE(eventually([&] {
    return e.pg.scalar("SELECT (reply_time > '" + applied_at +
                       "')::text FROM pg_stat_replication") == std::optional<std::string>("true");
  }));
  CHECK(e.confirmed_lsn() == real_lsn);
  CHECK(e.redis.exists("item:7"));
  e.daemon.reset();
  CHECK(e.confirmed_lsn() == real_lsn);
  CHECK(count(e, "temporary") == "0");
}
