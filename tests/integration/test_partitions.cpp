// A rule on a partitioned table fires for changes in any partition, and a row moving between
// partitions invalidates both sides of the move (DESIGN promise 4), with the publication that
// `pgbust setup --apply` makes.
#include <doctest/doctest.h>

#include <csignal>

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

// Without publish_via_partition_root (a publication made by hand) pgoutput sends each change
// under its leaf partition's name: pgbust maps the leaf to its root, by OID, and by column
// name (a partition attached from a table of its own may order its columns differently).
namespace {

void make_events(E2E& env) {
  env.pg.exec(
      "CREATE TABLE events (id int, day date, grp int, PRIMARY KEY (id, day)) "
      "PARTITION BY RANGE (day);"
      "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO "
      "('2025-01-01');"
      // Columns in another order than the root's, attached.
      "CREATE TABLE events_2025 (grp int, day date NOT NULL, id int NOT NULL);"
      "ALTER TABLE events ATTACH PARTITION events_2025 FOR VALUES FROM ('2025-01-01') TO "
      "('2026-01-01');"
      "CREATE TABLE sentinel (id int PRIMARY KEY)");
}

const char* const kEventRules =
    "version: 1\nrules:\n  - name: events\n    table: events\n"
    "    delete: [\"event:${id}\", \"day:${day}\", \"grp:${grp}\"]\n";

void check_gone(E2E& env, std::initializer_list<const char*> keys) {
  for (auto k : keys) {
    CAPTURE(std::string(k));
    CHECK_FALSE(env.redis.exists(k));
  }
}

// Inserts in every partition, a move between partitions, partitions created and attached
// while the daemon runs and written to at once: every key of the root's rule goes.
void exercise_leaves(E2E& env) {
  env.set_keys({"event:1", "day:2024-03-01", "grp:7", "event:2", "day:2025-02-01", "grp:8"});
  env.pg.exec("INSERT INTO events VALUES (1, '2024-03-01', 7), (2, '2025-02-01', 8)");
  env.sync();
  check_gone(env, {"event:1", "day:2024-03-01", "grp:7", "event:2", "day:2025-02-01", "grp:8"});

  // Row 1 moves from events_2024 to events_2025 (a DELETE on one leaf, an INSERT on the
  // other), and to another group: both sides go.
  env.set_keys({"event:1", "day:2024-03-01", "day:2025-06-01", "grp:7", "grp:9"});
  env.pg.exec("UPDATE events SET day = '2025-06-01', grp = 9 WHERE id = 1");
  env.sync();
  check_gone(env, {"event:1", "day:2024-03-01", "day:2025-06-01", "grp:7", "grp:9"});

  // A partition created while streaming, written to in the same transaction.
  env.set_keys({"event:3", "day:2026-05-01", "grp:11"});
  env.pg.exec(
      "BEGIN;"
      "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO "
      "('2027-01-01');"
      "INSERT INTO events VALUES (3, '2026-05-01', 11);"
      "COMMIT");
  env.sync();
  check_gone(env, {"event:3", "day:2026-05-01", "grp:11"});

  // A table attached as a partition while streaming, written to at once.
  env.set_keys({"event:4", "day:2027-05-01", "grp:12", "event:3", "grp:13", "day:2026-05-01"});
  env.pg.exec(
      "CREATE TABLE events_2027 (day date NOT NULL, grp int, id int NOT NULL);"
      "ALTER TABLE events ATTACH PARTITION events_2027 FOR VALUES FROM ('2027-01-01') TO "
      "('2028-01-01');"
      "INSERT INTO events VALUES (4, '2027-05-01', 12);"
      "UPDATE events SET grp = 13 WHERE id = 3");
  env.sync();
  check_gone(env, {"event:4", "day:2027-05-01", "grp:12", "event:3", "grp:13", "day:2026-05-01"});

  // A DELETE in a leaf (old row: the key columns only).
  env.set_keys({"event:2", "day:2025-02-01"});
  env.pg.exec("DELETE FROM events WHERE id = 2");
  env.sync();
  check_gone(env, {"event:2", "day:2025-02-01"});
}

}  // namespace

TEST_CASE("partitions without publish_via_partition_root: leaves map to their root") {
  E2E env;
  env.listen = "127.0.0.1:0";
  make_events(env);
  env.pg.exec("CREATE PUBLICATION " + env.publication + " FOR TABLE events, sentinel");
  auto rules = env.write_rules(kEventRules);
  auto config = env.dir.write("pgbust.yaml", env.config(rules.string()));
  env.run_daemon(config.string());
  env.wait_streaming();
  env.sync();
  INFO(env.logs());
  exercise_leaves(env);
  // Every leaf was looked up in time: nothing widened, and the table counts as covered (all
  // its partitions are published).
  const std::string addr = metrics_address(env);
  CHECK(metric(addr, "pgbust_widenings_total{reason=\"unknown_partition\"}") <= 0);
  CHECK(eventually([&] {
    return run({"curl", "-s", "--max-time", "5", "http://" + addr + "/healthz"})
               .output.find("healthy") != std::string::npos;
  }));
}

TEST_CASE("partitions with a FOR ALL TABLES publication: leaves map, other tables do not") {
  E2E env;
  make_events(env);
  env.pg.exec("CREATE TABLE other (id int PRIMARY KEY, grp int)");
  env.pg.exec("CREATE PUBLICATION " + env.publication + " FOR ALL TABLES");
  auto rules = env.write_rules(kEventRules);
  auto config = env.dir.write("pgbust.yaml", env.config(rules.string()));
  env.run_daemon(config.string());
  env.wait_streaming();
  env.sync();
  INFO(env.logs());
  env.set_keys({"event:50"});
  env.pg.exec("INSERT INTO other VALUES (50, 50)");
  env.sync();
  CHECK(env.redis.exists("event:50"));  // another table's row is not an event
  exercise_leaves(env);
}

// A leaf pgbust cannot map any more when it reads the change (dropped, or detached since, so
// the catalog no longer says what it was): the root's rules widen, counted, never a guess.
TEST_CASE("partitions without publish_via_partition_root: a leaf gone before it is read") {
  E2E env;
  env.listen = "127.0.0.1:0";
  make_events(env);
  env.pg.exec(
      "CREATE TABLE events_2028 PARTITION OF events FOR VALUES FROM ('2028-01-01') TO "
      "('2029-01-01');"
      "CREATE TABLE events_2029 PARTITION OF events FOR VALUES FROM ('2029-01-01') TO "
      "('2030-01-01');");
  env.pg.exec("CREATE PUBLICATION " + env.publication + " FOR TABLE events, sentinel");
  auto rules = env.write_rules(kEventRules);
  auto config = env.dir.write("pgbust.yaml", env.config(rules.string()));
  env.run_daemon(config.string());
  env.wait_streaming();
  env.sync();
  env.daemon.reset();  // stopped: what follows is read after the restart

  env.pg.exec("INSERT INTO events VALUES (5, '2028-05-01', 21)");
  env.pg.exec("DROP TABLE events_2028");
  env.pg.exec("INSERT INTO events VALUES (6, '2029-05-01', 22)");
  env.pg.exec("ALTER TABLE events DETACH PARTITION events_2029");
  env.set_keys(
      {"event:5", "day:2028-05-01", "grp:21", "event:6", "day:2029-05-01", "grp:22", "event:77"});
  env.run_daemon(config.string());
  env.wait_streaming();
  env.sync();
  INFO(env.logs());
  check_gone(env, {"event:5", "day:2028-05-01", "grp:21", "event:6", "day:2029-05-01", "grp:22",
                   "event:77"});
  // One widening per transaction: the dropped leaf's and the detached one's.
  CHECK(metric(metrics_address(env), "pgbust_widenings_total{reason=\"unknown_partition\"}") >= 2);
}

// A reload that puts a rule on a partitioned table: partitions the stream described before
// (their changes then went as they were, nobody's) are looked up again on their next change.
TEST_CASE("partitions without publish_via_partition_root: a rule added by a reload") {
  E2E env;
  make_events(env);
  env.pg.exec("CREATE TABLE other (id int PRIMARY KEY, grp int)");
  env.pg.exec("CREATE PUBLICATION " + env.publication + " FOR ALL TABLES");
  auto rules = env.write_rules(
      "version: 1\nrules:\n  - name: other\n    table: other\n    delete: [\"other:${id}\"]\n");
  auto config = env.dir.write("pgbust.yaml", env.config(rules.string()));
  env.run_daemon(config.string());
  env.wait_streaming();
  env.sync();
  INFO(env.logs());
  // Both leaves appear in the stream while no rule reads events.
  env.set_keys({"event:1", "event:2"});
  env.pg.exec("INSERT INTO events VALUES (1, '2024-03-01', 7), (2, '2025-02-01', 8)");
  env.sync();
  CHECK(env.redis.exists("event:1"));
  CHECK(env.redis.exists("event:2"));

  env.write_rules(std::string(kEventRules) +
                  "  - name: other\n    table: other\n    delete: [\"other:${id}\"]\n");
  env.daemon->signal(SIGHUP);
  REQUIRE(env.daemon->wait_for_output("rules reloaded"));
  env.set_keys({"event:1", "grp:17", "event:2", "grp:18"});
  env.pg.exec("UPDATE events SET grp = grp + 10");
  env.sync();
  check_gone(env, {"event:1", "grp:17", "event:2", "grp:18"});
}
