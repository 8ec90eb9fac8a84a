// `pgbust check --db` against a real PostgreSQL: missing tables and columns, the publication
// (missing, not covering a table, a column list, what it publishes), the slot (wrong plugin,
// another database, cannot be created), replica identities (DEFAULT, USING INDEX, NOTHING),
// NOTIFY triggers, poll watermark indexes, a clean database; every message checked whole,
// and each suggested fix run to show it fixes what it says.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

// One cluster for the whole file; each test case has its own database, slot and files.
Postgres& server() {
  static Postgres pg;
  return pg;
}

const char* kSchema =
    "CREATE TABLE work_order_task (id int PRIMARY KEY, status text, assigned_department_id int,"
    "  assigned_operator_id int, due_date date);"
    "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric);";

// task-stats at line 3, orders at line 8 (column 5).
const char* kRules = R"(version: 1
rules:
  - name: task-stats
    table: public.work_order_task
    delete:
      - "task_stats:${assigned_department_id}"
      - "operator_stats:${assigned_operator_id}"
  - name: orders
    table: orders
    delete: ["order:${id}"]
)";

struct Db {
  std::string name;
  TempDir dir;
  std::filesystem::path rules, config;

  // `sources`: the body of the config's `sources:` mapping; by default a logical source
  // with publication pgbust and a slot named after the database.
  Db(const std::string& db, const std::string& rules_yaml = kRules, std::string sources = "",
     const std::string& schema = kSchema)
      : name(db) {
    server().exec("CREATE DATABASE " + name);
    exec(schema);
    if (sources.empty()) sources = "{logical: {slot: " + slot() + ", publication: pgbust}}";
    rules = dir.write("rules.yaml", rules_yaml);
    config = dir.write("pgbust.yaml", "postgres: {conninfo: \"" + server().conninfo(name) +
                                          "\"}\nsources: " + sources + "\nrules: rules.yaml\n");
  }
  ~Db() {
    try {
      server().exec(
          "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
          "WHERE database = '" +
          name + "'");
    } catch (...) {
    }
  }

  std::string slot() const { return "s_" + name; }
  void exec(const std::string& sql) const { server().exec(sql, name); }

  PgbustResult check(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> args = {"check", "--config", config.string(), "--db"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_pgbust(args);
  }
  PgbustResult setup(const std::vector<std::string>& extra) const {
    std::vector<std::string> args = {"setup", "--config", config.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_pgbust(args);
  }

  // The last line on stdout.
  std::string summary(const std::string& counts) const {
    return "check: " + counts + " against 127.0.0.1:" + std::to_string(server().port()) +
           " dbname=" + name;
  }
  std::string at(int line) const { return rules.string() + ":" + std::to_string(line) + ":5: "; }
  std::string setup_hint() const { return "pgbust setup --config " + config.string(); }
};

std::string last_line(const std::string& out) {
  auto l = lines(out);
  return l.empty() ? "" : l.back();
}

const std::string kDefaultWarning =
    "warning: rule 'task-stats' needs old values of assigned_department_id, "
    "assigned_operator_id on update/delete, but on public.work_order_task REPLICA IDENTITY "
    "DEFAULT puts only the primary key (id) in the WAL; without them the rule widens to "
    "SCAN-DELETE task_stats:*, operator_stats:*; to avoid it: ALTER TABLE "
    "public.work_order_task REPLICA IDENTITY FULL;";

}  // namespace

TEST_CASE("a clean database: exit 0, no finding, the summary names the server") {
  Db db("clean");
  db.exec(
      "ALTER TABLE work_order_task REPLICA IDENTITY FULL;"
      "CREATE PUBLICATION pgbust FOR TABLE work_order_task, orders");
  auto r = db.check();
  CAPTURE(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  // The slot does not exist yet but can be created (superuser, wal_level logical, room).
  REQUIRE(lines(r.out).size() == 2);
  CHECK(lines(r.out)[0].rfind("rules OK: 2 rules on 2 tables from " + db.rules.string(), 0) == 0);
  CHECK(last_line(r.out) == db.summary("0 errors, 0 warnings"));

  // After pgbust setup --apply (column lists, the slot) it is still clean.
  auto s = db.setup({"--apply"});
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  REQUIRE(server().scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" +
                          db.slot() + "'") == "1");
  r = db.check();
  CAPTURE(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(last_line(r.out) == db.summary("0 errors, 0 warnings"));
  // --quiet: nothing at all.
  r = db.check({"--quiet"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
  CHECK(r.err.empty());
}

TEST_CASE("a missing column and a missing table: GCC-style errors at the rule, with suggestions") {
  std::string rules = R"(version: 1
rules:
  - name: task-stats
    table: public.work_order_task
    delete: ["task_stats:${assigned_dept_id}", "s:${status}"]
  - name: typo
    table: work_order_tasks
    delete: ["x:${id}"]
  - name: nothing-close
    table: orders
    delete: ["o:${zzzzzz}"]
  - name: on-a-view
    table: open_tasks
    delete: ["t:${id}"]
)";
  Db db("missing", rules);
  db.exec(
      "CREATE VIEW open_tasks AS SELECT * FROM work_order_task WHERE status = 'open';"
      "ALTER TABLE work_order_task REPLICA IDENTITY FULL;"
      "CREATE PUBLICATION pgbust FOR TABLE work_order_task, orders");
  auto r = db.check();
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            db.at(3) + "error: rule 'task-stats': column \"assigned_dept_id\" does not exist in "
                       "public.work_order_task; did you mean \"assigned_department_id\"?",
            db.at(6) + "error: rule 'typo': table public.work_order_tasks does not exist; did you "
                       "mean public.work_order_task?",
            db.at(9) + "error: rule 'nothing-close': column \"zzzzzz\" does not exist in "
                       "public.orders",
            db.at(12) + "error: rule 'on-a-view': public.open_tasks is a view, not a table: "
                        "pgbust sees changes to tables only",
        });
  // No identity warning for o:${zzzzzz}: the missing column is the finding.
  CHECK(last_line(r.out) == db.summary("4 errors, 0 warnings"));
  // --quiet still prints every error, and nothing on stdout.
  auto q = db.check({"-q"});
  CHECK(q.exit_code == 1);
  CHECK(q.out.empty());
  CHECK(lines(q.err).size() == 4);
}

TEST_CASE("a table outside the publication: an error with the ALTER PUBLICATION that fixes it") {
  Db db("uncovered");
  db.exec(
      "ALTER TABLE work_order_task REPLICA IDENTITY FULL;"
      "CREATE PUBLICATION pgbust FOR TABLE orders");
  auto r = db.check();
  CHECK(r.exit_code == 1);
  const std::string fix = "ALTER PUBLICATION pgbust ADD TABLE public.work_order_task;";
  CHECK(lines(r.err) == std::vector<std::string>{
                            "pgbust check: error: publication \"pgbust\" does not cover "
                            "public.work_order_task, which rule 'task-stats' reads: its changes "
                            "are never seen; " +
                            fix});
  CHECK(last_line(r.out) == db.summary("1 error, 0 warnings"));
  db.exec(fix);
  r = db.check();
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
}

TEST_CASE("a missing publication: an error with the pgbust setup hint") {
  Db db("nopub");
  db.exec("ALTER TABLE work_order_task REPLICA IDENTITY FULL");
  auto r = db.check();
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) ==
        std::vector<std::string>{"pgbust check: error: publication \"pgbust\" does not exist in "
                                 "database \"nopub\": " +
                                 db.setup_hint() +
                                 " prints the SQL that creates it for the rule tables (--apply "
                                 "runs it)"});
  CHECK(last_line(r.out) == db.summary("1 error, 0 warnings"));
  // Following the hint fixes it.
  REQUIRE(db.setup({"--apply"}).exit_code == 0);
  CHECK(db.check().exit_code == 0);
}

TEST_CASE("DEFAULT identity and a rule that needs old values: a warning with the ALTER TABLE") {
  std::string rules = std::string(kRules) + R"(  - name: status-changes
    table: work_order_task
    changed: [status]
    delete: ["task:${id}"]
  - name: with-fallback
    table: orders
    delete: ["customer:${customer_id}"]
    fallback:
      bump: ["rev:orders"]
)";
  Db db("identity", rules);
  db.exec("CREATE PUBLICATION pgbust FOR TABLE work_order_task, orders");
  auto r = db.check();
  CHECK(r.exit_code == 0);  // warnings only
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            // Tables in name order, rules in file order.
            db.at(15) + "warning: rule 'with-fallback' needs old values of customer_id on "
                        "update/delete, but on public.orders REPLICA IDENTITY DEFAULT puts only "
                        "the primary key (id) in the WAL; without them the rule runs its "
                        "fallback; to avoid it: ALTER TABLE public.orders REPLICA IDENTITY FULL;",
            db.at(3) + kDefaultWarning,
            db.at(11) + "warning: rule 'status-changes' needs old values of status on "
                        "update/delete, but on public.work_order_task REPLICA IDENTITY DEFAULT "
                        "puts only the primary key (id) in the WAL; its when/changed cannot "
                        "compare old status, so it fires whenever it cannot tell; to avoid it: "
                        "ALTER TABLE public.work_order_task REPLICA IDENTITY FULL;",
        });
  CHECK(last_line(r.out) == db.summary("0 errors, 3 warnings"));

  // USING INDEX: the index columns are the key, and the index is named.
  db.exec(
      "CREATE UNIQUE INDEX wot_dept ON work_order_task (id, assigned_department_id);"
      "ALTER TABLE work_order_task ALTER assigned_department_id SET NOT NULL;"
      "ALTER TABLE work_order_task REPLICA IDENTITY USING INDEX wot_dept");
  r = db.check();
  CHECK(r.exit_code == 0);
  REQUIRE(lines(r.err).size() == 3);
  CHECK(lines(r.err)[1] ==
        db.at(3) +
            "warning: rule 'task-stats' needs old values of assigned_operator_id on "
            "update/delete, but on public.work_order_task REPLICA IDENTITY USING INDEX "
            "wot_dept puts only the index columns (id, assigned_department_id) in the WAL; "
            "without them the rule widens to SCAN-DELETE operator_stats:*; to avoid it: "
            "ALTER TABLE public.work_order_task REPLICA IDENTITY FULL;");

  // The suggested ALTER TABLEs silence them.
  db.exec(
      "ALTER TABLE work_order_task REPLICA IDENTITY FULL; ALTER TABLE orders REPLICA IDENTITY "
      "FULL");
  r = db.check();
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(last_line(r.out) == db.summary("0 errors, 0 warnings"));
}

// Regression: the advice was `ALTER TABLE ... REPLICA IDENTITY FULL` alone; under the column
// list `pgbust setup --apply` makes, that made every UPDATE and DELETE on the table fail.
TEST_CASE("DEFAULT identity under a column list: the publication changes first, writes work") {
  Db db("identitylist");
  auto s = db.setup({"--apply"});
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  CHECK(s.err.find("table public.work_order_task: the rules read old values of "
                   "assigned_department_id, assigned_operator_id, which its replica identity "
                   "does not put in the WAL") != std::string::npos);
  auto r = db.check();
  CHECK(r.exit_code == 0);
  const std::string fix =
      "BEGIN; ALTER PUBLICATION pgbust DROP TABLE public.work_order_task; ALTER PUBLICATION "
      "pgbust ADD TABLE public.work_order_task; ALTER TABLE public.work_order_task REPLICA "
      "IDENTITY FULL; COMMIT;";
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            db.at(3) +
            "warning: rule 'task-stats' needs old values of assigned_department_id, "
            "assigned_operator_id on update/delete, but on public.work_order_task REPLICA "
            "IDENTITY DEFAULT puts only the primary key (id) in the WAL; without them the rule "
            "widens to SCAN-DELETE task_stats:*, operator_stats:*; to avoid it: " +
            fix + " (or " + db.setup_hint() + " --identity-full --apply)"});
  db.exec(fix);
  // The application's writes keep working, and nothing is left to fix.
  db.exec(
      "INSERT INTO work_order_task (id, status) VALUES (1, 'open');"
      "UPDATE work_order_task SET status = 'done' WHERE id = 1;"
      "DELETE FROM work_order_task WHERE id = 1");
  r = db.check();
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
}

TEST_CASE("setup --identity-full: FULL and every column in one transaction; writes work") {
  Db db("identityfull");
  auto s = db.setup({"--apply", "--identity-full"});
  INFO(s.err);
  REQUIRE(s.exit_code == 0);
  CHECK(server().scalar("SELECT relreplident::text FROM pg_class WHERE relname = "
                        "'work_order_task'",
                        db.name) == "f");
  db.exec(
      "INSERT INTO work_order_task (id, status) VALUES (1, 'open');"
      "UPDATE work_order_task SET status = 'done' WHERE id = 1;"
      "DELETE FROM work_order_task WHERE id = 1");
  auto r = db.check();
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
}

TEST_CASE("a partitioned rule table: pgbust maps partitions, publishing via the root is better") {
  std::string rules =
      std::string(kRules) + "  - name: events\n    table: events\n    delete: [\"event:${grp}\"]\n";
  Db db("partitioned", rules, "",
        std::string(kSchema) +
            "CREATE TABLE events (id int, day date, grp int, PRIMARY KEY (id, day)) "
            "PARTITION BY RANGE (day);"
            "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO "
            "('2025-01-01');"
            "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO "
            "('2026-01-01');");
  const std::string ri_warning =
      db.at(11) +
      "warning: rule 'events' needs old values of grp on update/delete, but on "
      "public.events REPLICA IDENTITY DEFAULT puts only the primary key (id, day) in "
      "the WAL; without them the rule widens to SCAN-DELETE event:*; to avoid it: "
      "ALTER TABLE public.events REPLICA IDENTITY FULL;";
  // Only one partition published: the other's changes are never sent.
  db.exec(
      "ALTER TABLE work_order_task REPLICA IDENTITY FULL;"
      "CREATE PUBLICATION pgbust FOR TABLE work_order_task, orders, events_2024");
  auto r = db.check();
  CAPTURE(r.err);
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: error: publication \"pgbust\" does not cover public.events "
            "(partition public.events_2025 unpublished), which rule 'events' reads: those "
            "changes are never seen; ALTER PUBLICATION pgbust ADD TABLE public.events;",
            ri_warning});
  // The partitioned table without publish_via_partition_root: each partition's changes come
  // under its own name; pgbust maps them, and says publishing via the root is better.
  db.exec(
      "DROP PUBLICATION pgbust; CREATE PUBLICATION pgbust FOR TABLE work_order_task, orders, "
      "events");
  r = db.check();
  CAPTURE(r.err);
  CHECK(r.exit_code == 0);
  const std::string fix = "ALTER PUBLICATION pgbust SET (publish_via_partition_root = true);";
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: warning: public.events is partitioned and publication \"pgbust\" "
            "publishes its changes under each partition's name (publish_via_partition_root is "
            "off): pgbust maps each partition to public.events itself, looking it up when it "
            "first appears in the stream, and widens the rules of public.events when it cannot "
            "tell (a partition detached or dropped before pgbust read its changes); publishing "
            "via the root avoids both: " +
                fix,
            ri_warning});
  db.exec(fix);
  r = db.check();
  CAPTURE(r.err);
  CHECK(r.exit_code == 0);
  CHECK(lines(r.err) == std::vector<std::string>{ri_warning});
  // And pgbust setup makes such a publication right in the first place.
  db.exec("DROP PUBLICATION pgbust");
  REQUIRE(db.setup({"--apply"}).exit_code == 0);
  CHECK(server().scalar("SELECT pubviaroot::text FROM pg_publication WHERE pubname = 'pgbust'",
                        db.name) == "true");
}

TEST_CASE("no replica identity, a column list without a needed column, what is published") {
  std::string rules = std::string(kRules) + R"(  - name: customers
    table: orders
    delete: ["customer:${new.customer_id}"]
)";
  Db db("pubcols", rules);
  db.exec(
      "ALTER TABLE work_order_task REPLICA IDENTITY NOTHING;"
      "CREATE PUBLICATION pgbust FOR TABLE work_order_task, orders (id, total) "
      "WITH (publish = 'insert, update, delete')");
  auto r = db.check();
  CHECK(r.exit_code == 1);
  const std::string fix_cols =
      "BEGIN; ALTER PUBLICATION pgbust DROP TABLE public.orders; ALTER PUBLICATION pgbust ADD "
      "TABLE public.orders (\"id\", \"customer_id\", \"total\"); COMMIT;";
  const std::string fix_identity = "ALTER TABLE public.work_order_task REPLICA IDENTITY FULL;";
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: warning: publication \"pgbust\" does not publish truncate: the rules "
            "never see those changes; ALTER PUBLICATION pgbust SET (publish = 'insert, update, "
            "delete, truncate');",
            "pgbust check: error: publication \"pgbust\"'s column list for public.orders leaves "
            "out customer_id, which the rules read (they widen on every change); " +
                fix_cols,
            "pgbust check: error: public.work_order_task has REPLICA IDENTITY NOTHING: a "
            "published table without a replica identity refuses UPDATE and DELETE; " +
                fix_identity,
        });
  CHECK(last_line(r.out) == db.summary("2 errors, 1 warning"));
  db.exec(fix_cols);
  db.exec(fix_identity);
  db.exec("ALTER PUBLICATION pgbust SET (publish = 'insert, update, delete, truncate')");
  r = db.check();
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  // Writes work on every published table (the fixes do not break UPDATE or DELETE).
  db.exec(
      "INSERT INTO orders VALUES (1, 2, 3); UPDATE orders SET total = 4; DELETE FROM orders;"
      "INSERT INTO work_order_task (id) VALUES (1); DELETE FROM work_order_task");

  // A row filter: rows outside it are never seen.
  db.exec("ALTER PUBLICATION pgbust SET TABLE work_order_task, orders WHERE (id > 0)");
  r = db.check();
  CHECK(r.exit_code == 0);
  CHECK(lines(r.err) == std::vector<std::string>{
                            "pgbust check: warning: publication \"pgbust\" publishes only the rows "
                            "of public.orders WHERE (id > 0): changes to other rows invalidate "
                            "nothing"});

  // A column list without the replica identity column: UPDATE and DELETE would fail.
  db.exec("ALTER PUBLICATION pgbust SET TABLE work_order_task, orders (customer_id)");
  r = db.check();
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: error: publication \"pgbust\"'s column list for public.orders leaves "
            "out replica identity column id (UPDATE and DELETE on the table fail); BEGIN; ALTER "
            "PUBLICATION pgbust DROP TABLE public.orders; ALTER PUBLICATION pgbust ADD TABLE "
            "public.orders (\"id\", \"customer_id\"); COMMIT;"});
  db.exec(
      "ALTER PUBLICATION pgbust SET TABLE work_order_task, orders (id, customer_id);"
      "ALTER TABLE orders REPLICA IDENTITY FULL");
  r = db.check();
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: error: publication \"pgbust\"'s column list for public.orders leaves "
            "out replica identity column total (UPDATE and DELETE on the table fail); " +
            fix_cols});
}

TEST_CASE("the slot: wrong plugin, another database, not creatable, and the role") {
  Db db("slots");
  db.exec(
      "ALTER TABLE work_order_task REPLICA IDENTITY FULL;"
      "CREATE PUBLICATION pgbust FOR TABLE work_order_task, orders");
  const std::string slot = "\"" + db.slot() + "\"";

  db.exec("SELECT pg_create_logical_replication_slot('" + db.slot() + "', 'test_decoding')");
  auto r = db.check();
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) == std::vector<std::string>{
                            "pgbust check: error: replication slot " + slot +
                            " is a logical slot with plugin test_decoding: pgbust needs a logical "
                            "slot with plugin pgoutput (drop it, or name another in "
                            "sources.logical.slot)"});
  db.exec("SELECT pg_drop_replication_slot('" + db.slot() + "')");

  server().exec("SELECT pg_create_logical_replication_slot('" + db.slot() + "', 'pgoutput')");
  r = db.check();
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) == std::vector<std::string>{
                            "pgbust check: error: replication slot " + slot +
                            " belongs to database \"postgres\", not \"slots\" (name another in "
                            "sources.logical.slot)"});
  server().exec("SELECT pg_drop_replication_slot('" + db.slot() + "')");

  // create_slot: false and no slot.
  db.dir.write("pgbust.yaml", "postgres: {conninfo: \"" + server().conninfo(db.name) +
                                  "\"}\nsources: {logical: {slot: " + db.slot() +
                                  ", create_slot: false}}\nrules: rules.yaml\n");
  r = db.check();
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: error: replication slot " + slot +
            " does not exist and sources.logical.create_slot is false: " + db.setup_hint() +
            " prints the SQL that creates it (or set create_slot: true)"});

  // A role without REPLICATION can neither create the slot nor stream.
  db.dir.write("pgbust.yaml", "sources: {logical: {slot: " + db.slot() + "}}\nrules: rules.yaml\n");
  server().exec("CREATE ROLE app LOGIN");
  r = db.check({"--postgres", server().conninfo(db.name) + " user=app"});
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) ==
        std::vector<std::string>{"pgbust check: error: replication slot " + slot +
                                 " does not exist and cannot be created: role \"app\" has neither "
                                 "REPLICATION nor SUPERUSER (ALTER ROLE app REPLICATION;)"});
  server().exec("ALTER ROLE app REPLICATION");
  r = db.check({"--postgres", server().conninfo(db.name) + " user=app"});
  CAPTURE(r.err);
  CHECK(r.exit_code == 0);

  // Every slot in use.
  for (int i = 0; i < 10; ++i)
    server().exec("SELECT pg_create_physical_replication_slot('full_" + std::to_string(i) + "')");
  r = db.check({"--postgres", server().conninfo(db.name)});
  for (int i = 0; i < 10; ++i)
    server().exec("SELECT pg_drop_replication_slot('full_" + std::to_string(i) + "')");
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) ==
        std::vector<std::string>{"pgbust check: error: replication slot " + slot +
                                 " does not exist and cannot be created: all 10 replication slots "
                                 "(max_replication_slots) are in use"});
}

TEST_CASE("wal_level replica: the slot cannot be created and nothing can stream") {
  Postgres pg({"wal_level = replica"});
  TempDir dir;
  pg.exec(kSchema);
  pg.exec(
      "ALTER TABLE work_order_task REPLICA IDENTITY FULL;"
      "CREATE PUBLICATION pgbust FOR TABLE work_order_task, orders");
  auto rules = dir.write("rules.yaml", kRules);
  auto r = run_pgbust({"check", "--rules", rules.string(), "--db", "--postgres", pg.conninfo()});
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: error: replication slot \"pgbust\" does not exist and cannot be "
            "created: wal_level is replica, not logical (ALTER SYSTEM SET wal_level = logical; "
            "then restart PostgreSQL)"});
  CHECK(last_line(r.out) == "check: 1 error, 0 warnings against 127.0.0.1:" +
                                std::to_string(pg.port()) + " dbname=postgres");
}

TEST_CASE("notify: missing, disabled and outdated triggers are warnings with the setup hint") {
  Db db("notify", kRules, "{notify: {channels: [inval]}}");
  const std::string hint = db.setup_hint() + " --notify prints the SQL that creates them";
  auto r = db.check();
  CHECK(r.exit_code == 0);
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: warning: public.orders has no pgbust NOTIFY triggers: the notify "
            "source sees none of its changes; " +
                hint,
            "pgbust check: warning: public.work_order_task has no pgbust NOTIFY triggers: the "
            "notify source sees none of its changes; " +
                hint,
        });
  CHECK(last_line(r.out) == db.summary("0 errors, 2 warnings"));
  // No logical source: no publication, slot or replica identity findings.
  REQUIRE(db.setup({"--notify", "--apply"}).exit_code == 0);
  r = db.check();
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());

  db.exec(
      "ALTER TABLE orders DISABLE TRIGGER pgbust_notify_truncate;"
      "DROP TRIGGER pgbust_notify ON work_order_task");
  db.dir.write("rules.yaml", std::string(kRules) +
                                 "  - name: totals\n    table: orders\n"
                                 "    delete: [\"total:${total}\"]\n");
  r = db.check();
  CHECK(r.exit_code == 0);
  const std::string again = "; run " + db.setup_hint() + " --notify again";
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: warning: trigger pgbust_notify_truncate on public.orders is disabled: "
            "it does not fire; ALTER TABLE public.orders ENABLE TRIGGER pgbust_notify_truncate;",
            "pgbust check: warning: the NOTIFY trigger function of public.orders does not send "
            "total, which the rules read (they widen on every change of it)" +
                again,
            "pgbust check: warning: public.work_order_task has no trigger pgbust_notify: the "
            "notify source sees none of its inserts, updates and deletes; " +
                hint,
        });
  // Another channel than the triggers notify on.
  db.dir.write("pgbust.yaml",
               "postgres: {conninfo: \"" + server().conninfo(db.name) +
                   "\"}\nsources: {notify: {channels: [other]}}\nrules: rules.yaml\n");
  REQUIRE(db.setup({"--notify", "--apply"}).exit_code == 0);
  db.dir.write("pgbust.yaml",
               "postgres: {conninfo: \"" + server().conninfo(db.name) +
                   "\"}\nsources: {notify: {channels: [inval]}}\nrules: rules.yaml\n");
  r = db.check();
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: warning: the NOTIFY trigger function of public.orders notifies on a "
            "channel pgbust does not listen on (sources.notify.channels: inval)" +
                again,
            "pgbust check: warning: the NOTIFY trigger function of public.work_order_task "
            "notifies on a channel pgbust does not listen on (sources.notify.channels: inval)" +
                again,
        });
}

TEST_CASE("poll: a watermark without an index is a warning, a missing watermark an error") {
  std::string schema =
      std::string(kSchema) +
      "CREATE TABLE events (id bigint PRIMARY KEY, kind text, updated_at timestamptz)";
  std::string rules = std::string(kRules) +
                      "  - name: events\n    table: events\n"
                      "    delete: [\"event:${kind}\"]\n";
  Db db("poll", rules,
        "{poll: {tables: [{table: public.events, watermark: [updated_at]},\n"
        "                 {table: public.orders, watermark: [id]},\n"
        "                 {table: public.work_order_task, watermark: [changed_at]}]}}",
        schema);
  auto r = db.check();
  CHECK(r.exit_code == 1);
  const std::string fix_default =
      "ALTER TABLE \"public\".\"events\" ALTER \"updated_at\" SET DEFAULT now();";
  const std::string fix_trigger =
      "CREATE FUNCTION \"public\".\"pgbust_touch_events\"() RETURNS trigger LANGUAGE plpgsql "
      "AS $$BEGIN NEW.\"updated_at\" := now(); RETURN NEW; END$$; CREATE TRIGGER pgbust_touch "
      "BEFORE UPDATE ON \"public\".\"events\" FOR EACH ROW EXECUTE FUNCTION "
      "\"public\".\"pgbust_touch_events\"();";
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            "pgbust check: warning: poll source: public.events.updated_at has no DEFAULT and no "
            "BEFORE INSERT trigger sets it: a row inserted without it has NULL there and is "
            "never polled (sources.poll.tables, line 2); " +
                fix_default,
            "pgbust check: warning: poll source: no BEFORE UPDATE trigger of public.events sets "
            "updated_at: an UPDATE that does not set it (raw SQL, a bulk update, another "
            "service) is never seen, and one that sets it from an application clock is seen "
            "only within the overlap (sources.poll.tables, line 2); " +
                fix_trigger,
            "pgbust check: warning: poll source: no index of public.events starts with "
            "updated_at, so every poll scans the table (sources.poll.tables, line 2); CREATE "
            "INDEX ON \"public\".\"events\" (\"updated_at\", \"id\");",
            "pgbust check: error: poll source: table public.work_order_task has no column "
            "\"changed_at\" (watermark in sources.poll.tables, line 4)",
        });
  CHECK(last_line(r.out) == db.summary("1 error, 3 warnings"));
  db.exec("CREATE INDEX ON \"public\".\"events\" (\"updated_at\", \"id\")");
  db.exec(fix_default);
  db.exec(fix_trigger);
  db.dir.write("pgbust.yaml", "postgres: {conninfo: \"" + server().conninfo(db.name) +
                                  "\"}\nsources: {poll: {tables: [{table: events, watermark: "
                                  "[updated_at]}]}}\nrules: rules.yaml\n");
  r = db.check();
  CAPTURE(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
}

TEST_CASE("connection failures name the server without the password; usage errors exit 2") {
  Db db("conn");
  auto r =
      db.check({"--postgres", "host=127.0.0.1 port=1 dbname=x password=sekrit connect_timeout=5"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.rfind("pgbust check: cannot connect to PostgreSQL (host=127.0.0.1 port=1 dbname=x "
                    "password=******** connect_timeout=5): ",
                    0) == 0);
  CHECK(r.err.find("sekrit") == std::string::npos);
  CHECK(r.out.find("sekrit") == std::string::npos);
  // --postgres without --db is a usage error; bad rules stop before connecting.
  CHECK(run_pgbust({"check", "--config", db.config.string(), "--postgres", "x"}).exit_code == 2);
  db.dir.write("rules.yaml", "version: 1\nrules: [\n");
  r = db.check({"--postgres", "host=127.0.0.1 port=1"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("YAML syntax error") != std::string::npos);
  CHECK(r.err.find("cannot connect") == std::string::npos);
  auto help = run_pgbust({"check", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--db") != std::string::npos);
  CHECK(help.out.find("--postgres") != std::string::npos);
}

// Issue 14 item 3: per rule, what widens under the table's identity and the cheapest exact
// remedy (USING INDEX on the smallest usable unique index, with the column-list change first,
// else FULL); `stable:` keeps updates exact and is reported as unchecked until a trigger
// enforces it. Each suggested fix is run to show it does what it says.
TEST_CASE("identity cost per rule: USING INDEX when an index covers, stable, its trigger") {
  const char* rules = R"(version: 1
rules:
  - name: docs
    table: docs
    delete: ["docs:${tenant_id}:${id}"]
  - name: notes
    table: notes
    stable: [tenant_id]
    delete: ["notes:${tenant_id}"]
)";
  const char* schema =
      "CREATE TABLE docs (id int PRIMARY KEY, tenant_id int NOT NULL, title text,"
      "  code text NOT NULL, slug text NOT NULL);"
      "CREATE UNIQUE INDEX docs_a_partial ON docs (tenant_id, id) WHERE title IS NOT NULL;"
      "CREATE UNIQUE INDEX docs_b_nullable ON docs (tenant_id, id, title);"
      "CREATE UNIQUE INDEX docs_key ON docs (tenant_id, id, slug);"
      "CREATE UNIQUE INDEX docs_wide ON docs (code, tenant_id, id, slug);"
      "CREATE TABLE notes (id int PRIMARY KEY, tenant_id int, body text);";
  Db db("identitycost", rules, "", schema);
  db.exec("CREATE PUBLICATION pgbust FOR TABLE docs (id, tenant_id, title, code), notes");
  auto r = db.check();
  CAPTURE(r.err);
  CHECK(r.exit_code == 0);
  const std::string docs_fix =
      "BEGIN; ALTER PUBLICATION pgbust DROP TABLE public.docs; ALTER PUBLICATION pgbust ADD "
      "TABLE public.docs (\"id\", \"tenant_id\", \"title\", \"code\", \"slug\"); ALTER TABLE "
      "public.docs REPLICA "
      "IDENTITY USING INDEX docs_key; COMMIT;";
  const std::string trigger =
      "CREATE FUNCTION \"public\".\"pgbust_stable_notes\"() RETURNS trigger LANGUAGE plpgsql AS "
      "$$BEGIN IF NEW.\"tenant_id\" IS DISTINCT FROM OLD.\"tenant_id\" THEN RAISE EXCEPTION "
      "'pgbust: a stable column of % changed', TG_TABLE_NAME; END IF; RETURN NEW; END$$; CREATE "
      "TRIGGER pgbust_stable BEFORE UPDATE OF \"tenant_id\" ON public.notes FOR EACH ROW EXECUTE "
      "FUNCTION \"public\".\"pgbust_stable_notes\"();";
  const std::string notes_identity =
      db.at(6) +
      "warning: rule 'notes' needs old values of tenant_id on update/delete, but on "
      "public.notes REPLICA IDENTITY DEFAULT puts only the primary key (id) in the WAL; without "
      "them a DELETE widens to SCAN-DELETE notes:*; an UPDATE is exact (stable: tenant_id); to "
      "avoid it: ALTER TABLE public.notes REPLICA IDENTITY FULL;";
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            db.at(3) +
                "warning: rule 'docs' needs old values of tenant_id on update/delete, but on "
                "public.docs REPLICA IDENTITY DEFAULT puts only the primary key (id) in the WAL; "
                "without them the rule widens to SCAN-DELETE docs:*:${id}; to avoid it: " +
                docs_fix +
                " (unique index docs_key on (tenant_id, id, slug), NOT NULL: the WAL then "
                "carries exactly those old values)",
            notes_identity,
            db.at(6) +
                "warning: rule 'notes': stable: tenant_id is an unchecked assertion: no BEFORE "
                "UPDATE trigger of public.notes refuses a change; if one changes, keys built "
                "from its old value stay in Redis; to enforce it: " +
                trigger,
        });
  CHECK(last_line(r.out) == db.summary("0 errors, 3 warnings"));

  // The fixes, pasted as printed: the docs warning and the unchecked assertion go; deletes of
  // notes still widen (stable cannot help a delete), and that stays said.
  db.exec(docs_fix);
  db.exec(trigger);
  r = db.check();
  CAPTURE(r.err);
  CHECK(r.exit_code == 0);
  CHECK(lines(r.err) == std::vector<std::string>{notes_identity});
  // The application's writes keep working; the trigger refuses a change to the stable column.
  db.exec(
      "INSERT INTO docs VALUES (1, 7, 't', 'c', 's'); UPDATE docs SET title = 'u' WHERE id = 1;"
      "DELETE FROM docs WHERE id = 1;"
      "INSERT INTO notes VALUES (1, 7, 'b'); UPDATE notes SET body = 'c' WHERE id = 1");
  CHECK_THROWS(db.exec("UPDATE notes SET tenant_id = 8 WHERE id = 1"));
  CHECK(server().scalar("SELECT tenant_id::text FROM notes WHERE id = 1", db.name) == "7");
}
