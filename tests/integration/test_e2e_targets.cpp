// Several Redis targets through the real daemon: every invalidation reaches every target
// under its own key prefix; one target paused (SIGSTOP) holds confirmation while the other
// keeps deleting; after SIGCONT both end with every key gone.
#include <doctest/doctest.h>

#include <string>

#include "e2e.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(version: 1
rules:
  - name: item-keys
    table: items
    delete: ["item:${id}"]
)";

// E2E's config with `redis:` as a list of two targets, prefixes a: and b:.
std::string two_targets(const E2E& e, const Redis& second, const std::string& rules) {
  std::string c = e.config(rules, "limits: {max_queued_batches: 16}\n");
  const std::string one = "redis: {url: \"" + e.redis.url() + "\", command_timeout: 1s}\n";
  auto at = c.find(one);
  REQUIRE(at != std::string::npos);
  c.replace(at, one.size(),
            "redis:\n  - {name: left, url: \"" + e.redis.url() +
                "\", key_prefix: \"a:\", command_timeout: 1s}\n"
                "  - {name: right, url: \"" +
                second.url() + "\", key_prefix: \"b:\", command_timeout: 1s}\n");
  return c;
}

}  // namespace

TEST_CASE("two targets: one paused holds confirmation, the other keeps deleting") {
  E2E e;
  e.listen = "127.0.0.1:0";
  Redis right;
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, v int)");
  e.pg.exec("INSERT INTO items SELECT g, 0 FROM generate_series(1, 40) g");
  e.pg.exec("CREATE TABLE IF NOT EXISTS sentinel (id int PRIMARY KEY)");
  e.pg.exec("CREATE PUBLICATION " + e.publication + " FOR TABLE items, sentinel");
  auto rules = e.write_rules(kRules);
  auto config = e.dir.write("pgbust.yaml", two_targets(e, right, rules.string()));
  e.run_daemon(config.string());
  e.wait_streaming();
  auto logs = [&] { return e.logs() + "\nright redis log:\n" + E2E::tail(right.log()); };

  // Everything committed before is applied on `on` (each target has its own prefix).
  int sentinel = 0;
  auto sync_on = [&](std::vector<const Redis*> on) {
    const std::string id = std::to_string(++sentinel);
    for (const Redis* r : on)
      r->set((r == &e.redis ? "a:" : "b:") + std::string("sentinel:") + id, "1");
    e.pg.exec("INSERT INTO sentinel VALUES (" + id + ")");
    bool ok = eventually([&] {
      for (const Redis* r : on)
        if (r->exists((r == &e.redis ? "a:" : "b:") + std::string("sentinel:") + id)) return false;
      return true;
    });
    INFO(logs());
    REQUIRE(ok);
  };
  sync_on({&e.redis, &right});
  for (int i = 1; i <= 40; ++i) {
    e.redis.set("a:item:" + std::to_string(i), "cached");
    right.set("b:item:" + std::to_string(i), "cached");
  }

  const std::string addr = metrics_address(e);
  CHECK(metric(addr, "pgbust_redis_up{target=\"left\"}") == 1);
  CHECK(metric(addr, "pgbust_redis_up{target=\"right\"}") == 1);
  CHECK(metric(addr, "pgbust_redis_info{target=\"right\",role=\"master\",tls=\"none\"}") == 1);

  // Pause the right target; everything before now is applied on both.
  right.pause();
  const std::string held = e.pg.scalar("SELECT pg_current_wal_lsn()::text").value_or("");
  for (int t = 0; t < 4; ++t)  // four transactions of ten updates each
    e.pg.exec("UPDATE items SET v = v + 1 WHERE id > " + std::to_string(t * 10) +
              " AND id <= " + std::to_string(t * 10 + 10));
  // The left target keeps deleting, up to the bound, while the right one is stopped.
  sync_on({&e.redis});
  {
    INFO(logs());
    CHECK(e.redis.keys("a:item:*").empty());
  }
  // A standby status sent after that still confirms nothing past the held transactions.
  const std::string after_left = e.pg.scalar("SELECT now()::text").value_or("");
  bool reported = eventually([&] {
    return e.pg.scalar("SELECT count(*) FROM pg_stat_replication WHERE reply_time > '" +
                       after_left + "'::timestamptz") == std::optional<std::string>("1");
  });
  CHECK(reported);
  // It shows as down on its own: metrics and /healthz name it.
  CHECK(eventually([&] { return metric(addr, "pgbust_redis_up{target=\"right\"}") == 0; }));
  CHECK(metric(addr, "pgbust_redis_up{target=\"left\"}") == 1);
  auto health = run({"curl", "-s", "--max-time", "5", "http://" + addr + "/healthz"}).output;
  const bool named = health.find("; redis right ") != std::string::npos &&
                     health.find("redis right ready") == std::string::npos &&
                     health.find("; redis left ready") != std::string::npos;
  CHECK_MESSAGE(named, health);
  CHECK(health.starts_with("degraded:"));
  {
    INFO("confirmed " << e.confirmed_lsn() << ", held transactions after " << held);
    CHECK(e.pg.scalar("SELECT confirmed_flush_lsn <= '" + held +
                      "'::pg_lsn FROM pg_replication_slots WHERE slot_name = '" + e.slot + "'") ==
          std::optional<std::string>("t"));
  }

  // Resumed: the right target catches up, both end with every key gone, confirmation moves.
  right.resume();
  sync_on({&e.redis, &right});
  INFO(logs());
  CHECK(e.redis.keys("a:item:*").empty());
  CHECK(right.keys("b:item:*").empty());
  CHECK(eventually([&] {
    return e.pg.scalar("SELECT confirmed_flush_lsn > '" + held +
                       "'::pg_lsn FROM pg_replication_slots WHERE slot_name = '" + e.slot + "'") ==
           std::optional<std::string>("t");
  }));
}
