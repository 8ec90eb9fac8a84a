// `pgbust flush` against a real redis-server: it removes exactly what the selected rules could
// produce (keys of other shapes, other prefixes and unselected rules survive), bumps their
// counters, publishes one message marked "gap" and "flush", asks before sending anything,
// and gives up with a clear error when Redis is not there.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

constexpr const char* kRules = R"(version: 1
rules:
  - name: task-stats
    table: work_order_task
    delete: ["task_stats:${assigned_department_id}", "dashboard"]
    bump: ["rev:dept:${assigned_department_id}", "rev:tasks"]
    publish: inv
  - name: task-detail
    table: work_order_task
    delete: "task:${id}:detail"
  - name: user-profile
    table: auth.users
    delete: "profile:${id}"
    fallback:
      bump: "rev:users"
)";

std::string config(const Redis& redis, const TempDir& dir) {
  dir.write("rules.yaml", kRules);
  return dir
      .write("pgbust.yaml",
             "postgres: {conninfo: \"host=127.0.0.1 dbname=none\"}\n"
             "sources: {logical: {slot: s, publication: p}}\n"
             "redis: {url: \"" +
                 redis.url() +
                 "\", key_prefix: \":1:\"}\n"
                 "rules: rules.yaml\n")
      .string();
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("flush --table: exactly what the table's rules could produce, and one message") {
  Redis redis;
  TempDir dir;
  auto cfg = config(redis, dir);
  const std::vector<std::string> gone = {":1:task_stats:1", ":1:task_stats:2", ":1:dashboard",
                                         ":1:task:5:detail", ":1:rev:dept:3"};
  const std::vector<std::string> kept = {
      ":1:task_stats",     // no value after the colon: not a key the template makes
      ":1:dashboard:x",    // another shape
      ":2:task_stats:1",   // another prefix
      "task_stats:1",      // no prefix
      ":1:task:5",         // not task:${id}:detail
      ":1:profile:5",      // a rule of another table
      ":1:rev:users",      // its fallback
      ":1:xtask_stats:1",  // a longer name
  };
  for (const auto& k : gone) redis.set(k, "cached");
  for (const auto& k : kept) redis.set(k, "cached");
  redis.set(":1:rev:tasks", "100");

  // A subscriber on the rule's channel.
  auto messages = dir.path() / "messages";
  run({"sh", "-c",
       "timeout 60 redis-cli -p " + std::to_string(redis.port()) + " subscribe inv > " +
           messages.string() + " 2>&1 &"});
  REQUIRE(eventually([&] {
    return redis.command({"PUBSUB", "NUMSUB", "inv"}) == std::optional<std::string>("inv\n1");
  }));

  // Not confirmed: nothing is sent.
  auto r = run({pgbust_binary(), "flush", "--config", cfg, "--table", "work_order_task"}, "n\n");
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("not confirmed; nothing sent") != std::string::npos);
  for (const auto& k : gone) CHECK(redis.exists(k));

  r = run({pgbust_binary(), "flush", "--config", cfg, "--table", "work_order_task"}, "y\n");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  for (const auto& k : gone) {
    INFO(k);
    CHECK_FALSE(redis.exists(k));
  }
  for (const auto& k : kept) {
    INFO(k);
    CHECK(redis.exists(k));
  }
  CHECK(redis.command({"GET", ":1:rev:tasks"}) == std::optional<std::string>("101"));
  CHECK(
      r.output.find("pgbust flush: 2 rules on redis 127.0.0.1:" + std::to_string(redis.port()) +
                    " db 0:\n"
                    "  rule task-stats (public.work_order_task):\n"
                    "    UNLINK :1:dashboard\n"
                    "    SCAN-DELETE :1:task_stats:*\n"
                    "    SCAN-DELETE :1:rev:dept:*\n"
                    "    INCR :1:rev:tasks\n"
                    "  rule task-detail (public.work_order_task):\n"
                    "    SCAN-DELETE :1:task:*:detail\n"
                    "  PUBLISH inv\n"
                    "Apply? [y/N] [1/3] rule task-stats: 2 patterns, 1 key, 1 bump ... done, 4 "
                    "keys deleted\n"
                    "[2/3] rule task-detail: 1 pattern ... done, 1 key deleted\n"
                    "[3/3] publish: 1 message ... done, 0 keys deleted\n"
                    "flushed 2 rules: 5 keys deleted, 1 counter bumped, 1 message published in ") !=
      std::string::npos);
  const std::string message =
      R"({"source":"flush","position":"","tables":["public.work_order_task"],"keys":[":1:dashboard"],)"
      R"("patterns":[":1:task_stats:*",":1:rev:dept:*"],"revisions":[":1:rev:tasks"],)"
      R"("truncated":false,"gap":true,"flush":true})";
  CHECK(eventually([&] { return read(messages).find(message) != std::string::npos; }));
  INFO(read(messages));
}

TEST_CASE("flush --rule with --yes, a rule's fallback, unknown names, Redis down") {
  Redis redis;
  TempDir dir;
  auto cfg = config(redis, dir);
  redis.set(":1:profile:5", "cached");
  redis.set(":1:task:5:detail", "cached");
  auto r = run({pgbust_binary(), "flush", "-c", cfg, "--rule", "user-profile", "--yes"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  // The fallback replaces the key the rule cannot compute.
  CHECK(r.output.find("    INCR :1:rev:users\n") != std::string::npos);
  CHECK(redis.exists(":1:profile:5"));
  CHECK(redis.exists(":1:task:5:detail"));
  CHECK(redis.command({"EXISTS", ":1:rev:users"}) == std::optional<std::string>("1"));

  r = run({pgbust_binary(), "flush", "-c", cfg, "--rule", "task-detial", "--yes"});
  CHECK(r.exit_code == 1);
  CHECK(r.output ==
        "pgbust flush: --rule: no rule named 'task-detial'; did you mean "
        "'task-detail'?\n");
  r = run({pgbust_binary(), "flush", "-c", cfg, "--table", "orders", "--yes"});
  CHECK(r.exit_code == 1);
  CHECK(r.output.rfind("pgbust flush: --table: no rule names table public.orders", 0) == 0);

  redis.stop();
  r = run(
      {pgbust_binary(), "flush", "-c", cfg, "--rule", "task-detail", "--yes", "--timeout", "1s"});
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("pgbust flush: not applied within 1s on 127.0.0.1:") != std::string::npos);
}

TEST_CASE("flush reaches every configured target, each with its own key prefix") {
  // It refused a config with several targets before (flushing only the first would have left
  // the others stale).
  Redis eu, us;
  TempDir dir;
  dir.write("rules.yaml", kRules);
  auto cfg = dir.write("pgbust.yaml",
                       "postgres: {conninfo: \"host=127.0.0.1 dbname=none\"}\n"
                       "sources: {logical: {slot: s, publication: p}}\n"
                       "redis:\n"
                       "  - {name: eu, url: \"" +
                           eu.url() +
                           "\", key_prefix: \"eu:\"}\n"
                           "  - {name: us, url: \"" +
                           us.url() +
                           "\", key_prefix: \"us:\"}\n"
                           "rules: rules.yaml\n");
  for (Redis* r : {&eu, &us}) {
    const std::string p = r == &eu ? "eu:" : "us:";
    r->set(p + "task:5:detail", "cached");
    r->set(p + "profile:5", "cached");               // another rule: survives
    r->set("other:" + p + "task:5:detail", "kept");  // another prefix: survives
  }
  auto r = run({pgbust_binary(), "flush", "-c", cfg.string(), "--rule", "task-detail", "--yes"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  for (Redis* redis : {&eu, &us}) {
    const std::string p = redis == &eu ? "eu:" : "us:";
    CHECK_FALSE(redis->exists(p + "task:5:detail"));
    CHECK(redis->exists(p + "profile:5"));
    CHECK(redis->exists("other:" + p + "task:5:detail"));
    CHECK(r.output.find("SCAN-DELETE " + p + "task:*:detail") != std::string::npos);
    CHECK(r.output.find(" on 127.0.0.1:" + std::to_string(redis->port()) + " db 0\n") !=
          std::string::npos);
  }
}

TEST_CASE("flush adds one entry marked flush to each stream, as it publishes to channels") {
  Redis redis;
  TempDir dir;
  auto cfg = config(redis, dir);
  dir.write("rules.yaml", R"(version: 1
rules:
  - name: task-log
    table: work_order_task
    delete: "task:${id}"
    stream: inv-log
)");
  redis.set(":1:task:5", "cached");
  auto r = run({pgbust_binary(), "flush", "-c", cfg, "--rule", "task-log", "--yes"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("    SCAN-DELETE :1:task:*\n  XADD inv-log\n") != std::string::npos);
  CHECK(r.output.find("1 message published") != std::string::npos);
  CHECK_FALSE(redis.exists(":1:task:5"));
  CHECK(redis.command({"XLEN", "inv-log"}) == std::optional<std::string>("1"));
  auto entry = redis.command({"XRANGE", "inv-log", "-", "+"});
  REQUIRE(entry);
  CHECK(entry->find(R"({"source":"flush","position":"","tables":["public.work_order_task"],)"
                    R"("keys":[],"patterns":[":1:task:*"],"revisions":[],"truncated":false,)"
                    R"("gap":true,"flush":true})") != std::string::npos);
}
