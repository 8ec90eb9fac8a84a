// A rule on a partitioned table fires for changes in any partition, and a row moving between
// partitions invalidates both sides of the move (DESIGN promise 4), with the publication that
// `pgbust setup --apply` makes.
#include <doctest/doctest.h>

#include "e2e.hpp"

using namespace pgbust::test;

TEST_CASE("a range-partitioned table: changes in every partition, moves between partitions") {
  E2E env;
  env.pg.exec(
      "CREATE TABLE events (id int, day date, grp int, PRIMARY KEY (id, day)) "
      "PARTITION BY RANGE (day);"
      "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO "
      "('2025-01-01');"
      "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO "
      "('2026-01-01');"
      "CREATE TABLE sentinel (id int PRIMARY KEY)");
  auto rules = env.write_rules(
      "version: 1\nrules:\n  - name: events\n    table: events\n"
      "    delete: [\"event:${id}\", \"day:${day}\", \"grp:${grp}\"]\n");
  auto config = env.dir.write("pgbust.yaml", env.config(rules.string()));
  auto setup = run({pgbust_binary(), "setup", "--apply", "--config", config.string()});
  INFO(setup.output);
  REQUIRE(setup.exit_code == 0);
  env.run_daemon(config.string());
  env.wait_streaming();
  env.sync();
  INFO(env.logs());

  env.set_keys({"event:1", "day:2024-03-01", "grp:7", "event:2", "day:2025-02-01", "grp:8"});
  env.pg.exec("INSERT INTO events VALUES (1, '2024-03-01', 7), (2, '2025-02-01', 8)");
  env.sync();
  for (auto k : {"event:1", "day:2024-03-01", "grp:7", "event:2", "day:2025-02-01", "grp:8"})
    CHECK_FALSE(env.redis.exists(k));

  // Row 1 moves from events_2024 to events_2025, and to another group: both sides go.
  env.set_keys({"event:1", "day:2024-03-01", "day:2025-06-01", "grp:7", "grp:9", "grp:8"});
  env.pg.exec("UPDATE events SET day = '2025-06-01', grp = 9 WHERE id = 1");
  env.sync();
  for (auto k : {"event:1", "day:2024-03-01", "day:2025-06-01", "grp:7", "grp:9"}) {
    CAPTURE(std::string(k));
    CHECK_FALSE(env.redis.exists(k));
  }
}
