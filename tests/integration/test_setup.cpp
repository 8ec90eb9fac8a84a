// `pgbust setup` against a real PostgreSQL: the printed SQL runs in psql (twice: idempotent),
// the publication gets exactly the columns the rules need plus the replica identity, tables
// without an identity keep accepting UPDATEs, --apply does the same, errors refuse to apply.
#include <doctest/doctest.h>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(
version: 1
rules:
  - name: orders
    table: orders
    delete: ["order:${id}", "customer:${customer_id}"]
  - name: lines
    table: lines
    delete: ["line:${sku}"]
  - name: audit
    table: audit
    bump: ["rev:audit:${kind}"]
)";

struct Fixture {
  Postgres pg;
  TempDir dir;
  std::filesystem::path config;

  explicit Fixture(const std::string& rules = kRules, const std::string& sources = "") {
    pg.exec(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, status text, total numeric);"
        "CREATE TABLE lines (order_id int, line int, sku text, qty int, PRIMARY KEY (order_id, "
        "line));"
        "ALTER TABLE lines REPLICA IDENTITY FULL;"
        "CREATE TABLE audit (kind text, at timestamptz)");  // no key: no replica identity
    dir.write("rules.yaml", rules);
    config = dir.write("pgbust.yaml", "postgres: {conninfo: \"" + pg.conninfo() + "\"}\n" +
                                          sources + "rules: rules.yaml\n");
  }

  RunResult setup(std::vector<std::string> args) {
    std::vector<std::string> argv = {pgbust_binary(), "setup", "--config", config.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  // psql -f, as a DBA would run the printed SQL.
  RunResult psql(const std::string& sql) {
    auto file = dir.write("setup.sql", sql);
    return run({"/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                pg.conninfo(), "-f", file.string()});
  }
};

}  // namespace

TEST_CASE("the publication SQL runs in psql, twice, with column lists and the slot") {
  Fixture f;
  auto out = f.setup({});
  INFO(out.output);
  REQUIRE(out.exit_code == 0);
  // The warning about audit goes to stderr (captured together here): keep only the SQL.
  std::string sql = out.output.substr(out.output.find("-- pgbust setup"));
  CHECK(out.output.find("warning: table public.audit has no replica identity") !=
        std::string::npos);
  for (int i = 0; i < 2; ++i) {
    auto r = f.psql(sql);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }
  CHECK(f.pg.scalar("SELECT attnames::text FROM pg_publication_tables WHERE pubname = 'pgbust' AND "
                    "tablename = 'orders'") == "{id,customer_id}");
  CHECK(f.pg.scalar("SELECT attnames::text FROM pg_publication_tables WHERE pubname = 'pgbust' AND "
                    "tablename = 'lines'") == "{order_id,line,sku,qty}");  // FULL: every column
  CHECK(f.pg.scalar("SELECT relreplident FROM pg_class WHERE relname = 'audit'") == "f");
  CHECK(f.pg.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgbust' AND "
                    "plugin = 'pgoutput'") == "1");
  // Writes to every published table still work.
  f.pg.exec(
      "INSERT INTO orders VALUES (1, 2, 'x', 3); UPDATE orders SET status = 'y';"
      "INSERT INTO audit VALUES ('k', now()); UPDATE audit SET kind = 'j'; DELETE FROM audit;"
      "INSERT INTO lines VALUES (1, 1, 's', 1); DELETE FROM lines");
}

TEST_CASE("--apply creates the publication and slot named in the config") {
  Fixture f(kRules, "sources: {logical: {slot: s_apply, publication: p_apply}}\n");
  auto out = f.setup({"--apply"});
  INFO(out.output);
  REQUIRE(out.exit_code == 0);
  CHECK(out.output.find("publication and slot ready") != std::string::npos);
  CHECK(f.pg.scalar("SELECT count(*) FROM pg_publication_tables WHERE pubname = 'p_apply'") == "3");
  CHECK(f.pg.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 's_apply'") ==
        "1");
  auto again = f.setup({"--apply"});
  CHECK(again.exit_code == 0);
}

TEST_CASE(
    "the NOTIFY SQL runs in psql twice and installs one row and one truncate trigger per table") {
  Fixture f;
  auto out = f.setup({"--notify"});
  INFO(out.output);
  REQUIRE(out.exit_code == 0);
  std::string sql = out.output.substr(out.output.find("-- pgbust setup"));
  for (int i = 0; i < 2; ++i) {
    auto r = f.psql(sql);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }
  CHECK(f.pg.scalar("SELECT count(*) FROM pg_trigger WHERE tgname IN ('pgbust_notify', "
                    "'pgbust_notify_truncate') AND NOT tgisinternal") == "6");
  // The triggers work on writes (and a huge row does not make the write fail).
  f.pg.exec(
      "INSERT INTO orders VALUES (1, 2, repeat('x', 20000), 3); UPDATE orders SET total = 4;"
      "DELETE FROM orders; TRUNCATE orders; INSERT INTO audit VALUES (repeat('k', 9000), now())");
}

TEST_CASE("a rule table that does not exist: an error, and --apply refuses") {
  std::string rules =
      std::string(kRules) + "  - name: ghost\n    table: ghost\n    delete: [\"g:${id}\"]\n";
  Fixture f(rules);
  auto printed = f.setup({});
  CHECK(printed.exit_code == 1);
  CHECK(printed.output.find("error: table public.ghost does not exist") != std::string::npos);
  auto applied = f.setup({"--apply"});
  CHECK(applied.exit_code == 1);
  CHECK(applied.output.find("nothing applied") != std::string::npos);
  CHECK(f.pg.scalar("SELECT count(*) FROM pg_publication") == "0");
  auto notify = f.setup({"--notify", "--apply"});
  CHECK(notify.exit_code == 1);
  CHECK(f.pg.scalar("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal") == "0");
}

TEST_CASE(
    "--offline needs no database; --apply with --offline is refused; bad rules are reported") {
  Fixture f;
  f.pg.stop();
  auto offline = f.setup({"--offline"});
  CHECK(offline.exit_code == 0);
  CHECK(offline.output.find("-- Offline: no column lists") != std::string::npos);
  auto down = f.setup({});
  CHECK(down.exit_code == 1);
  CHECK(down.output.find("--offline prints the SQL without connecting") != std::string::npos);
  CHECK(f.setup({"--offline", "--apply"}).exit_code == 2);
  f.dir.write("rules.yaml",
              "version: 1\nrules:\n  - name: x\n    table: t\n    delete: [\"${\"]\n");
  auto bad = f.setup({"--offline"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.output.find("rules.yaml:") != std::string::npos);
  auto help = run({pgbust_binary(), "setup", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("--notify") != std::string::npos);
}
