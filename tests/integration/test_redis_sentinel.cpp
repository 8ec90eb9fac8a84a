// Redis Sentinel through the real daemon: one master, one replica, three redis-sentinel
// processes. During a live workload the master is failed over (SENTINEL FAILOVER, and in a
// second case SIGKILL); every committed change's key is gone from the new master in the end
// (each key was cached and replicated before, so an invalidation lost with the old master
// shows),
// and the daemon's status and metrics name the new master and count the failover.
#include <doctest/doctest.h>

#include <csignal>
#include <string>

#include "e2e.hpp"
#include "redis_sentinel.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(version: 1
rules:
  - name: item-keys
    table: items
    delete: ["item:${id}"]
)";

constexpr std::size_t kItems = 2000;

// E2E's config with `redis:` the Sentinel-managed master (the URL's host:port is not used).
std::string sentinel_config(const E2E& e, const SentinelSet& s, const std::string& rules) {
  std::string c = e.config(rules, "limits: {max_queued_batches: 16}\n");
  const std::string one = "redis: {url: \"" + e.redis.url() + "\", command_timeout: 1s}\n";
  auto at = c.find(one);
  REQUIRE(at != std::string::npos);
  c.replace(at, one.size(),
            "redis:\n  url: \"redis://unused:1/0\"\n  command_timeout: 1s\n"
            "  connect_timeout: 1s\n  sentinel: {master: " +
                std::string(SentinelSet::kName) + ", addresses: " + s.addresses() + "}\n");
  return c;
}

// The failover under test: `start` begins it (asynchronously); the workload runs until the
// sentinels name another master that says it is one, the daemon's status names it, and a
// round of updates after that; then every key is gone from the new master.
void failover_during_workload(const std::function<void(SentinelSet&)>& start) {
  SentinelSet s;
  E2E e;
  e.listen = "127.0.0.1:0";
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, v int)");
  e.pg.exec("INSERT INTO items SELECT g, 0 FROM generate_series(1, " + std::to_string(kItems) +
            ") g");
  e.pg.exec("CREATE TABLE IF NOT EXISTS sentinel (id int PRIMARY KEY)");
  e.pg.exec("CREATE PUBLICATION " + e.publication + " FOR TABLE items, sentinel");
  auto rules = e.write_rules(kRules);
  auto config = e.dir.write("pgbust.yaml", sentinel_config(e, s, rules.string()));
  e.run_daemon(config.string());
  e.wait_streaming();
  auto logs = [&] { return e.logs() + s.logs(); };
  const std::string addr = metrics_address(e);
  const std::string old_master = s.master_address();
  auto status = [&] {
    return run({"curl", "-s", "--max-time", "5", "http://" + addr + "/healthz"}).output;
  };
  {
    INFO(logs());
    REQUIRE(eventually([&] { return metric(addr, "pgbust_redis_up{target=\"mymaster\"}") == 1; }));
    CHECK(status().find("sentinel 'mymaster' master " + old_master) != std::string::npos);
    CHECK(metric(addr, "pgbust_redis_failovers_total{target=\"mymaster\"}") == 0);
  }
  // Every row's key is cached (and replicated) before the workload: an invalidation the old
  // master acknowledges after the replica's promotion is lost there, so only one applied on
  // the new master clears the key there.
  for (std::size_t i = 1; i <= kItems; ++i) s.master().set("item:" + std::to_string(i), "cached");
  {
    INFO(logs());
    REQUIRE(eventually([&] { return s.replica().keys("item:*").size() == kItems; }));
  }

  // The workload: one committed update per round, each of another row, so invalidations are
  // due before, during and after the failover.
  bool started = false, switched = false;
  int after = 0, round = 0;
  std::string new_master;
  const auto deadline = std::chrono::steady_clock::now() + 40s;
  while (after < 100) {
    if (std::chrono::steady_clock::now() > deadline) {
      INFO(logs());
      FAIL("the failover was not followed within 40s");
    }
    const std::size_t id = static_cast<std::size_t>(round++) % kItems + 1;
    e.pg.exec("UPDATE items SET v = v + 1 WHERE id = " + std::to_string(id));
    if (!started && round == 100) {
      start(s);
      started = true;
    }
    if (switched) {
      ++after;
    } else if (started) {
      new_master = s.master_address();
      switched = !new_master.empty() && new_master != old_master &&
                 SentinelSet::is_master(s.at(new_master)) &&
                 status().find("sentinel 'mymaster' master " + new_master) != std::string::npos;
    }
  }

  // Everything committed is applied on the new master: a last row's key goes too.
  Redis& now = s.at(new_master);
  now.set("sentinel:1", "1");
  e.pg.exec("INSERT INTO sentinel VALUES (1)");
  INFO(logs());
  REQUIRE(eventually([&] { return !now.exists("sentinel:1"); }, 30s));
  // Rows 1..updated changed: their keys are gone; the rest stay cached.
  const std::size_t updated = std::min<std::size_t>(static_cast<std::size_t>(round), kItems);
  std::vector<std::string> stale;
  for (const auto& k : now.keys("item:*"))
    if (std::stoul(k.substr(5)) <= updated) stale.push_back(k);
  INFO("rounds " << round << ", failover after round 100");
  CHECK_MESSAGE(stale.empty(), stale.size() << " keys of committed changes left, e.g. "
                                            << (stale.empty() ? "" : stale.front()));
  CHECK(now.keys("item:*").size() == kItems - updated);
  CHECK(status().find("sentinel 'mymaster' master " + new_master) != std::string::npos);
  CHECK(metric(addr, "pgbust_redis_failovers_total{target=\"mymaster\"}") >= 1);
  CHECK(e.daemon->output().find("failover: the master is now " + new_master) != std::string::npos);
}

}  // namespace

TEST_CASE("sentinel: SENTINEL FAILOVER during a workload; every key gone from the new master") {
  failover_during_workload([](SentinelSet& s) {
    CHECK(s.sentinel(0).command({"SENTINEL", "FAILOVER", SentinelSet::kName}) ==
          std::optional<std::string>("OK"));
  });
}

TEST_CASE("sentinel: the master SIGKILLed during a workload; every key gone from the new one") {
  failover_during_workload([](SentinelSet& s) { s.original_master().kill(); });
}

TEST_CASE("sentinel: check --config --redis asks the sentinels in turn and checks the master") {
  SentinelSet s;
  TempDir dir;
  dir.write("rules.yaml", std::string(kRules));
  auto config = [&](const std::string& master) {
    // The first address refuses connections: the next sentinel is asked.
    return dir
        .write("pgbust.yaml",
               "rules: rules.yaml\nredis:\n  url: \"redis://unused:1/0\"\n"
               "  sentinel: {master: " +
                   master + ", addresses: [\"127.0.0.1:1\", " + s.addresses().substr(1) + "}\n")
        .string();
  };
  auto ok = run_pgbust({"check", "--config", config(SentinelSet::kName), "--redis"});
  CHECK_MESSAGE(ok.exit_code == 0, ok.out << ok.err);
  CHECK_MESSAGE(ok.out.find("redis OK: sentinel 'mymaster' master " + s.master_address() +
                            " db 0 (named by sentinel 127.0.0.1:") != std::string::npos,
                ok.out);
  auto unknown = run_pgbust({"check", "--config", config("nosuch"), "--redis"});
  CHECK(unknown.exit_code == 1);
  CHECK_MESSAGE(unknown.err.find("redis sentinel 'nosuch': no sentinel named the master: sentinel "
                                 "127.0.0.1:1: connect") != std::string::npos,
                unknown.err);
  CHECK_MESSAGE(unknown.err.find("does not know a master named 'nosuch'") != std::string::npos,
                unknown.err);
  // check --config alone validates the sentinel settings as run does, without connecting.
  auto bad = dir.write("bad.yaml",
                       "rules: rules.yaml\nredis:\n  sentinel: {master: m, addresses: [\"h:1\"], "
                       "password_file: /nonexistent/pw}\n");
  auto refused = run_pgbust({"check", "--config", bad.string()});
  CHECK(refused.exit_code == 1);
  CHECK_MESSAGE(refused.err.find("/nonexistent/pw") != std::string::npos, refused.err);
}
