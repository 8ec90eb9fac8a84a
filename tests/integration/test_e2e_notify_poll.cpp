// End to end with the real binary: `pgbust run` with the NOTIFY and poll sources side by
// side (no logical source), real PostgreSQL and Redis; a restart resumes polling from the
// persisted watermarks and catches up on what changed while it was down.
#include <doctest/doctest.h>

#include <signal.h>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

const char* kNotifyRules = R"(
version: 1
rules:
  - name: orders
    table: orders
    delete: ["order:${id}", "customer_orders:${customer_id}"]
)";

const char* kPollRules = R"(
  - name: act
    table: act
    delete: ["act:${id}", "group_acts:${group_id}"]
  - name: tasks
    table: tasks
    delete: ["task:${id}", "group_tasks:${group_id}"]
)";

struct Fixture {
  Postgres pg;
  Redis redis;
  TempDir dir;
  std::filesystem::path config;
  std::unique_ptr<Daemon> daemon;

  Fixture() {
    pg.exec(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, note text);"
        "CREATE TABLE act (id bigserial PRIMARY KEY, group_id int);"
        "CREATE TABLE tasks (id int PRIMARY KEY, updated_at timestamptz NOT NULL, group_id int);"
        "INSERT INTO tasks VALUES (1, now() - interval '1 hour', 1), (2, now() - interval '1 "
        "hour', 1)");
    dir.write("rules.yaml", std::string(kNotifyRules) + kPollRules);
    config =
        dir.write("pgbust.yaml",
                  "postgres: {conninfo: \"" + pg.conninfo() +
                      "\"}\n"
                      "sources:\n"
                      "  notify: {channels: [inval], on_gap: widen, tables: [orders]}\n"
                      "  poll:\n"
                      "    interval: 200ms\n"
                      "    state_dir: " +
                      (dir.path() / "state").string() +
                      "\n"
                      "    tables:\n"
                      "      - {table: public.act, watermark: [id], overlap: 0s}\n"
                      "      - {table: public.tasks, watermark: [updated_at, id], overlap: 5s}\n"
                      "redis: {url: \"" +
                      redis.url() +
                      "\"}\n"
                      "rules: rules.yaml\n"
                      "status: {interval: 1s, listen: \"\"}\n");
    // Triggers only for the table the NOTIFY source serves (sources.notify.tables).
    auto r = run({pgbust_binary(), "setup", "--notify", "--apply", "--config", config.string()});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(pg.scalar("SELECT string_agg(DISTINCT tgrelid::regclass::text, ',') FROM pg_trigger "
                    "WHERE NOT tgisinternal") == "orders");
  }

  std::string logs() const { return daemon ? daemon->output() : std::string("(not started)"); }

  void start() {
    daemon = std::make_unique<Daemon>(std::vector<std::string>{"run", "--config", config.string()});
    bool ok = daemon->wait_for_output("notify [streaming]", 30s) &&
              daemon->wait_for_output("poll [streaming]", 30s);
    INFO(logs());
    REQUIRE(ok);
  }

  void stop() {
    daemon->signal(SIGTERM);
    auto code = daemon->wait(30s);
    INFO(logs());
    CHECK(code == 0);
  }

  bool gone(const std::string& key) {
    return eventually([&] { return !redis.exists(key); }, 30s);
  }
};

}  // namespace

TEST_CASE("notify and poll sources in one daemon invalidate the right keys") {
  Fixture f;
  // The first start widens (NOTIFY gap, no poll watermark yet): keys cached before it go.
  for (auto k : {"customer_orders:99", "group_acts:99", "group_tasks:99"}) f.redis.set(k, "old");
  f.start();
  INFO(f.logs());
  REQUIRE(f.gone("customer_orders:99"));
  REQUIRE(f.gone("group_acts:99"));
  REQUIRE(f.gone("group_tasks:99"));

  for (auto k : {"order:1", "customer_orders:10", "customer_orders:20", "customer_orders:30",
                 "act:1", "group_acts:7", "task:2", "group_tasks:1", "group_tasks:3"})
    f.redis.set(k, "cached");
  f.pg.exec("INSERT INTO orders VALUES (1, 10, 'x')");
  f.pg.exec("UPDATE orders SET customer_id = 20 WHERE id = 1");
  CHECK(f.gone("customer_orders:20"));
  CHECK(f.gone("customer_orders:10"));
  CHECK(f.gone("order:1"));
  f.pg.exec("INSERT INTO act (group_id) VALUES (7)");
  CHECK(f.gone("act:1"));
  CHECK(f.gone("group_acts:7"));
  f.pg.exec("UPDATE tasks SET group_id = 3, updated_at = now() WHERE id = 2");
  CHECK(f.gone("task:2"));
  CHECK(f.gone("group_tasks:3"));
  CHECK(f.gone("group_tasks:1"));  // the old group is unknown to polling: widened
  CHECK(f.redis.exists("customer_orders:30"));

  // Each source has its own state in the status line.
  REQUIRE(eventually(
      [&] {
        auto out = f.logs();
        auto pos = out.rfind("status: ");
        return pos != std::string::npos && out.find("notify streaming", pos) != std::string::npos &&
               out.find("poll streaming", pos) != std::string::npos;
      },
      10s));
  f.stop();
  CHECK(std::filesystem::exists(f.dir.path() / "state" / "public.act.watermark"));
  CHECK(std::filesystem::exists(f.dir.path() / "state" / "public.tasks.watermark"));
}

TEST_CASE("a restart resumes polling from the saved watermarks and catches up") {
  Fixture f;
  f.start();
  f.pg.exec("INSERT INTO act (group_id) VALUES (1)");
  REQUIRE(eventually(
      [&] {
        auto s = run({"cat", (f.dir.path() / "state" / "public.act.watermark").string()});
        return s.output.find("\"cursor\": [\"1\"]") != std::string::npos;
      },
      30s));
  f.stop();
  // While it is down.
  f.pg.exec("INSERT INTO act (group_id) VALUES (2)");
  f.redis.set("act:1", "must stay: changed before the stop and already invalidated");
  f.redis.set("act:2", "cached");
  f.redis.set("group_acts:2", "cached");
  f.start();
  INFO(f.logs());
  CHECK(f.logs().find("every rule of 1 table(s) widens once") != std::string::npos);
  CHECK(f.gone("act:2"));
  CHECK(f.gone("group_acts:2"));
  CHECK(f.redis.exists("act:1"));
  CHECK(f.logs().find("resuming from") != std::string::npos);
  f.stop();
}
