// examples/company-reports: the FastAPI reports service with one schema per company. Its own
// schema, generated rules and both configs through the real daemon: the poll source on
// max(id_act) (pgbust.yaml) and the logical source (pgbust-logical.yaml). New entries,
// imports, deletes, a transaction committing after a later one, a restart, and with logical
// replication an update and a company added while running; every company's report keys
// are checked after each step.
#include <doctest/doctest.h>

#include "example.hpp"
#include "pgbust/pg/libpq.hpp"

using namespace pgbust::test;

namespace {

struct Reports {
  bool polling;  // the poll source (pgbust.yaml), else logical (pgbust-logical.yaml)
  Example ex{"company-reports"};
  AppKeys keys{ex};

  explicit Reports(const std::string& config_name) : polling(config_name == "pgbust.yaml") {
    ex.check_shipped(config_name);
    ex.load_schema();
    check_generated();
    ex.derive_config(config_name);
    if (config_name == "pgbust-logical.yaml") ex.setup();
    ex.check_db();
    ex.start();
    for (int c : {7, 42, 43}) keys.all = concat(keys.all, reports(c));
    keys.all.push_back("reports:420:balance:2024");  // another company, a look-alike id
    keys.all.push_back("reports:index");
    keys.value = R"({"company_id": 42, "balance": [["512000", "1520.00"]]})";
    keys.ttl_seconds = 600;
  }

  // The shipped rules.d/companies.yaml and pgbust.yaml's poll tables are what the example's
  // generators print for the example's schema.
  void check_generated() {
    auto rules = ex.pg.scalar(read_text(ex.dir / "generate-rules.sql"));
    REQUIRE(rules);
    CHECK(*rules == read_text(ex.dir / "rules.d/companies.yaml"));
    auto tables = ex.pg.scalar(read_text(ex.dir / "generate-poll-tables.sql"));
    REQUIRE(tables);
    CHECK_MESSAGE(read_text(ex.dir / "pgbust.yaml").find(*tables) != std::string::npos,
                  "pgbust.yaml lacks the generated poll tables:\n"
                      << *tables);
  }

  // What the service caches per company.
  static std::vector<std::string> reports(int company) {
    std::string p = "reports:" + std::to_string(company) + ":";
    return {p + "balance:2024", p + "pnl:2024-03", p + "ledger:512000", p + "aged-receivables"};
  }

  static std::string entry(int company, const std::string& account, const std::string& amount) {
    return "INSERT INTO company_" + std::to_string(company) +
           ".act (account, amount, booked_on, label) VALUES ('" + account + "', " + amount +
           ", '2024-03-05', 'entry')";
  }

  // The steps both sources handle the same way.
  void common_steps() {
    INFO(ex.logs());
    // A new entry in company 42: its reports, no other company's (not 420's).
    keys.cache();
    ex.commit(entry(42, "512000", "1520.00"));
    keys.expect_gone(reports(42));

    // One transaction booking in two companies (an inter-company invoice).
    keys.cache();
    ex.commit("BEGIN; " + entry(43, "411000", "300.00") + "; " + entry(7, "401000", "-300.00") +
              "; COMMIT");
    keys.expect_gone(concat(reports(43), reports(7)));

    // A bank statement import: 500 entries in one statement.
    keys.cache();
    ex.commit(
        "INSERT INTO company_42.act (account, amount, booked_on) SELECT '512000', g, "
        "'2024-03-01'::date + g % 28 FROM generate_series(1, 500) g");
    keys.expect_gone(reports(42));

    // An entry booked by mistake is deleted: max(id_act) does not move, the reports change.
    keys.cache();
    ex.commit("DELETE FROM company_43.act WHERE account = '411000'");
    keys.expect_gone(reports(43));

    // A long transaction took id n, a later one n+1 and committed first; max(id_act) had
    // already passed n when it committed, so the old monitor never saw it.
    keys.cache();
    auto conn = pgbust::pg::connect(ex.pg.conninfo());
    pgbust::pg::exec(conn.get(), "BEGIN", "begin");
    pgbust::pg::exec(conn.get(), entry(7, "606000", "12.50"), "slow entry");
    ex.commit(entry(7, "607000", "99.00"));
    keys.expect_gone(reports(7));
    keys.cache();
    pgbust::pg::exec(conn.get(), "COMMIT", "commit");
    ex.sync();
    keys.expect_gone(reports(7));

    // Rolled back: nothing.
    keys.cache();
    ex.commit("BEGIN; " + entry(42, "512000", "1.00") + "; ROLLBACK");
    keys.expect_gone({});

    // pgbust restarts; an entry is booked while it is down: it is caught up on start. The
    // poll source also re-reads its overlap window (the last 30 s of ids), whose entries
    // drop their company's reports once more (at least once); nothing else is dropped.
    ex.stop();
    ex.pg.exec(entry(43, "411000", "75.00"));
    ex.start();
    keys.expect_gone(reports(43),
                     polling ? concat(reports(7), reports(42)) : std::vector<std::string>{});
  }
};

}  // namespace

TEST_CASE("company-reports with the poll source on max(id_act)") {
  Reports r("pgbust.yaml");
  r.common_steps();
}

TEST_CASE("company-reports with the logical source") {
  Reports r("pgbust-logical.yaml");
  auto& ex = r.ex;
  r.common_steps();
  INFO(ex.logs());

  // Logical replication also sees an entry relabelled in place (an id watermark cannot).
  r.keys.cache();
  ex.commit("UPDATE company_7.act SET label = 'relabelled' WHERE account = '606000'");
  r.keys.expect_gone(Reports::reports(7));

  // Onboarding company 44 while running: regenerate the rules, update the publication with
  // `pgbust setup --apply`, reload with SIGHUP.
  ex.pg.exec("SELECT create_company(44, 'Nouvelle SAS')");
  auto rules = ex.pg.scalar(read_text(ex.dir / "generate-rules.sql"));
  REQUIRE(rules);
  CHECK(rules->find("table: company_44.act") != std::string::npos);
  ex.tmp.write("rules.d/companies.yaml", *rules);
  ex.setup();
  ex.daemon->signal(SIGHUP);
  REQUIRE(ex.daemon->wait_for_output("rules reloaded: 5 rules", 30s));
  r.keys.all = concat(r.keys.all, Reports::reports(44));
  r.keys.cache();
  ex.commit(Reports::entry(44, "101000", "10000.00"));
  r.keys.expect_gone(Reports::reports(44));
}
