// Row values become keys through PostgreSQL's text output, which follows session settings
// (TimeZone, DateStyle, IntervalStyle, extra_float_digits, bytea_output). With a server whose
// defaults differ from pgbust's pinned ones, and a writer session with others again, the
// logical, NOTIFY and poll sources must all render a row to the same key: the one the docs
// promise (UTC, ISO) and `explain` computes.
#include <doctest/doctest.h>

#include <signal.h>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

// One rule per source's table; the key holds every rendering that depends on a setting.
std::string rules() {
  std::string out = "version: 1\nrules:\n";
  for (const char* t : {"ev_l", "ev_n", "ev_p"})
    out += std::string("  - name: ") + t + "\n    table: " + t +
           "\n    on: [insert]\n    delete: [\"" + t + ":id:${id}\", \"" + t +
           ":${ts}|${ts|date}|${d}|${iv}|${f}|${b}\"]\n";
  return out;
}

// What every source must render for the row inserted below.
std::string expected_key(const std::string& table) {
  return table +
         ":2024-01-01 02:30:00+00|2024-01-01|2024-03-05|1 day 02:00:00|0.3333333333333333|\\x0102";
}

struct Fixture {
  // Server defaults unlike pgbust's: a database or role configured for a local app.
  Postgres pg{{"timezone = 'America/New_York'", "datestyle = 'SQL, DMY'",
               "intervalstyle = 'sql_standard'", "extra_float_digits = 0",
               "bytea_output = 'escape'"}};
  Redis redis;
  TempDir dir;
  std::unique_ptr<Daemon> daemon;

  Fixture() {
    for (const char* t : {"ev_l", "ev_n", "ev_p"})
      pg.exec(std::string("CREATE TABLE ") + t +
              " (id int PRIMARY KEY, ts timestamptz, d date, iv interval, f float8, b bytea)");
    pg.exec("CREATE PUBLICATION pgbust_render FOR TABLE ev_l");
    dir.write("rules.yaml", rules());
    auto config = dir.write(
        "pgbust.yaml",
        "postgres: {conninfo: \"" + pg.conninfo() +
            "\"}\n"
            "sources:\n"
            "  logical: {slot: pgbust_render, publication: pgbust_render, create_slot: true, "
            "state_dir: " +
            (dir.path() / "state").string() +
            "}\n"
            "  notify: {channels: [inval], on_gap: widen, tables: [ev_n]}\n"
            "  poll:\n"
            "    interval: 200ms\n"
            "    state_dir: " +
            (dir.path() / "state").string() +
            "\n"
            "    tables:\n"
            "      - {table: public.ev_p, watermark: [id], overlap: 0s}\n"
            "redis: {url: \"" +
            redis.url() +
            "\"}\n"
            "rules: rules.yaml\n"
            "status: {interval: 1s, listen: \"\"}\n");
    auto r = run({pgbust_binary(), "setup", "--notify", "--apply", "--config", config.string()});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    daemon = std::make_unique<Daemon>(std::vector<std::string>{"run", "--config", config.string()});
    // Every source streaming (the slot exists: later commits are seen).
    bool up = daemon->wait_for_output("status: healthy", 30s);
    INFO(logs());
    REQUIRE(up);
  }
  ~Fixture() {
    if (daemon) {
      daemon->signal(SIGTERM);
      daemon->wait(30s);
    }
  }

  std::string logs() const { return daemon->output() + "\npostgres log:\n" + pg.log(); }

  // Inserts row `id` into every table and waits until each source has applied it (the
  // always-exact "<table>:id:<id>" key is gone; both keys of a row go in one batch).
  void insert_and_wait(int id, const std::string& writer_settings) {
    for (const char* t : {"ev_l", "ev_n", "ev_p"})
      redis.set(std::string(t) + ":id:" + std::to_string(id), "x");
    for (const char* t : {"ev_l", "ev_n", "ev_p"})
      pg.exec(writer_settings + "INSERT INTO " + t + " VALUES (" + std::to_string(id) +
              ", '2024-01-01 02:30:00+00', '2024-03-05', '1 day 2 hours', 1.0/3, '\\x0102')");
    for (const char* t : {"ev_l", "ev_n", "ev_p"}) {
      bool gone = eventually(
          [&] { return !redis.exists(std::string(t) + ":id:" + std::to_string(id)); }, 30s);
      INFO(logs());
      REQUIRE(gone);
    }
  }
};

}  // namespace

TEST_CASE(
    "every source renders a row with the pinned settings, whatever the server's and writer's") {
  Fixture f;
  // The first start widens (poll: no watermark yet; notify: a gap). Wait until row 1 went
  // through every source, so the widenings are behind us before the keys are cached.
  f.insert_and_wait(1, "");
  for (const char* t : {"ev_l", "ev_n", "ev_p"}) f.redis.set(expected_key(t), "cached");
  // The writer's own session settings differ again (they reach the NOTIFY trigger).
  f.insert_and_wait(2,
                    "SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'German'; "
                    "SET IntervalStyle = 'iso_8601'; SET extra_float_digits = -3; "
                    "SET bytea_output = 'escape'; ");
  INFO(f.logs());
  for (std::string table : {"ev_l", "ev_n", "ev_p"}) {
    CAPTURE(table);
    CHECK_FALSE(f.redis.exists(expected_key(table)));
  }
}
