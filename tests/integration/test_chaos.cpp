// Issue 10's chaos test: a workload of committed updates while, in turn, the slot is dropped
// while pgbust is stopped, the publication is dropped and re-created without the rule table,
// Redis refuses writes (maxmemory + noeviction) and Redis stops answering (SIGSTOP). Each
// change's key is cached before it commits and is unique to it; in the end every committed
// change's key is gone (recall 100%), the verdict was not healthy during each loss window,
// and every gap was widened and counted.
#include <doctest/doctest.h>

#include <csignal>
#include <sstream>

#include "e2e.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(version: 1
rules:
  - name: items
    table: items
    delete: ["item:${id}:${v}"]
    bump: ["rev:items:${grp}"]
)";

constexpr int kItems = 5;

struct Chaos : E2E {
  std::string addr;
  int version = 0;
  std::vector<std::string> committed;  // the key of every committed change

  Chaos() {
    pg.exec(
        "CREATE TABLE items (id int PRIMARY KEY, grp int, v int); "
        "INSERT INTO items SELECT g, g % 2, 0 FROM generate_series(1, " +
        std::to_string(kItems) + ") g");
    listen = "127.0.0.1:0";
    logical_options = ", coverage_interval: 200ms";
  }

  // One round of the workload: the next version of every item, one transaction each. Its
  // keys are cached first (Redis must take writes then), as an application's reads would.
  std::vector<std::string> cache_round() {
    ++version;
    std::vector<std::string> keys;
    for (int id = 1; id <= kItems; ++id)
      keys.push_back("item:" + std::to_string(id) + ":" + std::to_string(version));
    set_keys(keys);
    return keys;
  }
  void commit_round(const std::vector<std::string>& keys) {
    for (int id = 1; id <= kItems; ++id)
      pg.exec("UPDATE items SET v = " + std::to_string(version) +
              " WHERE id = " + std::to_string(id));
    committed.insert(committed.end(), keys.begin(), keys.end());
  }
  void round() { commit_round(cache_round()); }

  bool all_gone(const std::vector<std::string>& keys) const {
    for (const auto& k : keys)
      if (redis.exists(k)) return false;
    return true;
  }

  // A status line written after `from` that contains `needle` (and, when `unhealthy`, does
  // not say healthy).
  bool status_after(std::size_t from, const std::string& needle, bool unhealthy = true) {
    return eventually(
        [&] {
          std::istringstream in(daemon->output().substr(from));
          for (std::string line; std::getline(in, line);) {
            auto at = line.find("status: ");
            if (at == std::string::npos) continue;
            if (unhealthy && line.compare(at, 15, "status: healthy") == 0) continue;
            if (line.find(needle, at) != std::string::npos) return true;
          }
          return false;
        },
        20s);
  }

  // The window is over: everything committed so far is invalidated, and healthy again.
  void recovered(const std::string& window) {
    INFO("after: " << window);
    CHECK(eventually([&] { return all_gone(committed); }, 30s));
    std::size_t mark = daemon->output().size();
    CHECK(status_after(mark, "status: healthy", false));
  }
};

}  // namespace

TEST_CASE("chaos: slot dropped, publication re-created, Redis full, Redis stopped: recall 100%") {
  Chaos c;
  c.start(kRules, "items");
  c.addr = metrics_address(c);
  INFO(c.logs());
  c.round();
  c.recovered("a quiet round");

  // 1. The slot is dropped while pgbust is stopped, with changes before and after the drop.
  {
    auto before = c.cache_round();
    c.daemon->signal(SIGTERM);
    REQUIRE(c.daemon->wait(30s) == 0);
    c.commit_round(before);
    c.pg.exec("SELECT pg_drop_replication_slot('" + c.slot + "')");
    c.round();
    // Redis answers nothing while pgbust starts, so the gap stays open long enough to be seen.
    c.redis.pause();
    c.run_daemon((c.dir.path() / "pgbust.yaml").string());
    CHECK(c.status_after(0, "(gap: "));
    c.redis.resume();
    c.addr = metrics_address(c);
    CHECK(c.daemon->wait_for_output("gap closed", 30s));
    c.recovered("slot dropped");
  }

  // 2. The publication is dropped and re-created without the rule table (one transaction: a
  // change decoded while it is missing would stop PostgreSQL 15's walsender for good).
  {
    std::size_t mark = c.daemon->output().size();
    c.pg.exec("BEGIN; DROP PUBLICATION " + c.publication + "; CREATE PUBLICATION " + c.publication +
              " FOR TABLE sentinel; COMMIT");
    c.round();
    CHECK(c.status_after(mark, "(publication does not cover public.items"));
    c.round();
    c.pg.exec("ALTER PUBLICATION " + c.publication + " ADD TABLE items");
    CHECK(c.daemon->wait_for_output("publication gap closed", 30s));
    c.recovered("publication re-created");
  }

  // 3. Redis refuses writes: the bumps fail with OOM until memory is back.
  {
    std::size_t mark = c.daemon->output().size();
    auto keys = c.cache_round();
    c.redis.command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
    c.redis.command({"CONFIG", "SET", "maxmemory", "1"});
    c.commit_round(keys);
    CHECK(c.status_after(mark, "OOM"));
    c.redis.command({"CONFIG", "SET", "maxmemory", "0"});
    c.recovered("Redis full");
  }

  // 4. Redis stops answering, then comes back.
  {
    std::size_t mark = c.daemon->output().size();
    auto keys = c.cache_round();
    c.redis.pause();
    c.commit_round(keys);
    CHECK(c.status_after(mark, "status: "));
    c.redis.resume();
    c.recovered("Redis stopped");
  }

  c.round();
  c.recovered("a last quiet round");
  // Recall, key by key; every gap widened and counted.
  std::vector<std::string> left;
  for (const auto& k : c.committed)
    if (c.redis.exists(k)) left.push_back(k);
  CHECK(left.empty());
  CHECK(c.committed.size() == static_cast<std::size_t>(c.version * kItems));
  CHECK(metric(c.addr, "pgbust_widenings_total{reason=\"slot_gap\"}") >= 1);
  CHECK(metric(c.addr, "pgbust_widenings_total{reason=\"publication_gap\"}") >= 1);
}
