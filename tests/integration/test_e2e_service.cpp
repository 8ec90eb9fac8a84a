// Running it in production, end to end: sd_notify on a real NOTIFY_SOCKET, SIGHUP with good
// and broken rules, /metrics and /healthz over HTTP, `pgbust status`, SIGTERM draining.
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>

#include "e2e.hpp"

using namespace pgbust::test;

namespace {

const char* kRulesA = R"(version: 1
rules:
  - name: items-a
    table: items
    delete: ["a:${id}"]
)";
const char* kRulesB = R"(version: 1
rules:
  - name: items-b
    table: items
    delete: ["b:${id}"]
)";

RunResult curl(const std::string& url) {
  return run({"curl", "-s", "-w", "\nHTTP %{http_code}", "--max-time", "5", url});
}

}  // namespace

TEST_CASE("systemd notifications, reload, metrics, health and status of a live daemon") {
  E2E e;
  INFO(e.logs());
  e.listen = "127.0.0.1:0";
  NotifySocket notify(e.dir.path() / "notify.sock");
  e.daemon_env = {{"NOTIFY_SOCKET", (e.dir.path() / "notify.sock").string()}};
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, v int)");
  e.start(kRulesA, "items");

  CHECK(eventually([&] { return notify.saw("READY=1"); }));
  CHECK(eventually([&] { return notify.saw("STATUS=healthy"); }));

  e.set_keys({"a:1", "b:1"});
  e.pg.exec("INSERT INTO items VALUES (1, 1)");
  e.sync();
  CHECK_FALSE(e.redis.exists("a:1"));
  CHECK(e.redis.exists("b:1"));

  // /metrics and /healthz over HTTP, values checked against what was done.
  std::string addr = metrics_address(e);
  auto metrics = curl("http://" + addr + "/metrics");
  CHECK(metrics.output.find("HTTP 200") != std::string::npos);
  CHECK(metrics.output.find("pgbust_changes_total{table=\"public.items\",op=\"insert\"} 1") !=
        std::string::npos);
  CHECK(metrics.output.find("pgbust_keys_deleted_total{rule=\"items-a\"} 1") != std::string::npos);
  CHECK(metrics.output.find("pgbust_source_up{source=\"logical\"} 1") != std::string::npos);
  CHECK(metrics.output.find("pgbust_commit_to_redis_seconds_count") != std::string::npos);
  auto health = curl("http://" + addr + "/healthz");
  CHECK(health.output.find("HTTP 200") != std::string::npos);
  CHECK(health.output.find("healthy") != std::string::npos);

  // `pgbust status` against the running daemon.
  auto st = run({pgbust_binary(), "status", "--listen", addr});
  CHECK(st.exit_code == 0);
  CHECK(st.output.find("logical streaming") != std::string::npos);

  // SIGHUP with good rules: the new rules apply.
  e.write_rules(kRulesB);
  e.daemon->signal(SIGHUP);
  CHECK(e.daemon->wait_for_output("rules reloaded"));
  CHECK(eventually([&] { return notify.saw("RELOADING=1"); }));
  e.set_keys({"a:2", "b:2"});
  e.pg.exec("INSERT INTO items VALUES (2, 1)");
  e.sync();
  CHECK(e.redis.exists("a:2"));
  CHECK_FALSE(e.redis.exists("b:2"));

  // SIGHUP with broken rules: errors reported with their position, the old rules keep working.
  e.write_rules(
      "version: 1\nrules:\n  - name: broken\n    table: items\n    delete: [\"x:${id\"]\n");
  e.daemon->signal(SIGHUP);
  CHECK(e.daemon->wait_for_output("reload failed"));
  CHECK(e.daemon->output().find("rules.yaml:") != std::string::npos);
  e.set_keys({"b:3"});
  e.pg.exec("INSERT INTO items VALUES (3, 1)");
  e.sync();  // the sentinel rule is still there: the old rules are active
  CHECK_FALSE(e.redis.exists("b:3"));
  metrics = curl("http://" + addr + "/metrics");
  CHECK(metrics.output.find("pgbust_reloads_total{result=\"failed\"} 1") != std::string::npos);
  CHECK(metrics.output.find("pgbust_reloads_total{result=\"ok\"} 1") != std::string::npos);

  // Redis down: /healthz degrades, `pgbust status` exits non-zero.
  e.redis.pause();
  CHECK(eventually(
      [&] {
        return curl("http://" + addr + "/healthz").output.find("HTTP 503") != std::string::npos;
      },
      20s));
  CHECK(run({pgbust_binary(), "status", "--listen", addr}).exit_code == 1);
  e.redis.resume();
  CHECK(eventually(
      [&] {
        return run({pgbust_binary(), "status", "--listen", addr}).exit_code == 0;
      },
      30s));

  // SIGTERM drains and exits 0; then nobody answers.
  e.daemon->signal(SIGTERM);
  auto code = e.daemon->wait(30s);
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  CHECK(eventually([&] { return notify.saw("STOPPING=1"); }));
  CHECK(run({pgbust_binary(), "status", "--listen", addr}).exit_code == 3);
}
