// Shared fixture for end-to-end tests: a real PostgreSQL, a real redis-server, and the real
// pgbust binary running the logical source with a config and rules written to a temp dir.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "harness.hpp"

namespace pgbust::test {

struct E2E {
  Postgres pg;
  Redis redis;
  TempDir dir;
  std::unique_ptr<Daemon> daemon;
  std::string slot = "pgbust_e2e";
  std::string publication = "pgbust_e2e";
  int sentinel = 0;
  std::vector<std::pair<std::string, std::string>> daemon_env;  // extra environment
  std::string listen = "";      // status.listen; "" disables the metrics endpoint
  std::string logical_options;  // more keys of sources.logical, e.g. ", on_gap: fail"

  explicit E2E(const std::vector<std::string>& pg_settings = {}) : pg(pg_settings) {}

  // For INFO(env.logs()): doctest evaluates it only when an assertion fails.
  std::string logs() const {
    return "pgbust output:\n" + (daemon ? daemon->output() : std::string("(not started)")) +
           "\nredis log tail:\n" + tail(redis.log()) + "\npostgres log tail:\n" + tail(pg.log());
  }

  static std::string tail(const std::string& s, std::size_t n = 4000) {
    return s.size() > n ? s.substr(s.size() - n) : s;
  }

  // The config the daemon runs with; `extra` is appended (YAML).
  std::string config(const std::string& rules_file, const std::string& extra = "") const {
    return "postgres: {conninfo: \"" + pg.conninfo() + "\"}\n" +
           "sources:\n  logical: {slot: " + slot + ", publication: " + publication +
           ", create_slot: true, status_interval: 1s, state_dir: \"" +
           (dir.path() / "state").string() + "\"" + logical_options + "}\n" + "redis: {url: \"" +
           redis.url() + "\", command_timeout: 1s}\n" + "rules: " + rules_file + "\n" +
           "status: {interval: 1s, listen: \"" + listen + "\"}\n" + extra;
  }

  // Writes rules (with a sentinel rule appended) and config, creates the publication and
  // starts the daemon. The sentinel table lets a test know that everything committed before
  // it has been applied (the pipeline applies in commit order).
  void start(const std::string& rules_yaml, const std::string& publication_tables,
             const std::string& extra_config = "") {
    pg.exec("CREATE TABLE IF NOT EXISTS sentinel (id int PRIMARY KEY)");
    pg.exec("CREATE PUBLICATION " + publication + " FOR TABLE " + publication_tables +
            ", sentinel");
    auto rules_path = write_rules(rules_yaml);
    auto config_path = dir.write("pgbust.yaml", config(rules_path.string(), extra_config));
    run_daemon(config_path.string());
    wait_streaming();
    sync();
  }

  // The daemon creates the slot when missing: changes committed before that are not seen.
  void wait_streaming() {
    bool ok = eventually(
        [&] {
          return pg.scalar("SELECT active::text FROM pg_replication_slots WHERE slot_name = '" +
                           slot + "'") == std::optional<std::string>("true");
        },
        30s);
    if (!ok) FAIL("pgbust did not start streaming; " << logs());
  }

  // (Re)writes rules.yaml with the sentinel rule appended; returns its path.
  std::filesystem::path write_rules(const std::string& rules_yaml) const {
    return dir.write("rules.yaml", rules_yaml +
                                       "  - name: sentinel\n    table: sentinel\n    on: [insert]\n"
                                       "    delete: [\"sentinel:${id}\"]\n");
  }

  void run_daemon(const std::string& config_path) {
    daemon = std::make_unique<Daemon>(std::vector<std::string>{"run", "--config", config_path},
                                      daemon_env);
  }

  void restart_daemon() {
    auto path = (dir.path() / "pgbust.yaml").string();
    daemon.reset();
    run_daemon(path);
  }

  // Commits a sentinel row and waits until its key is gone: everything committed before is
  // then in Redis.
  void sync(std::chrono::milliseconds timeout = 30s) {
    int id = ++sentinel;
    std::string key = "sentinel:" + std::to_string(id);
    redis.set(key, "1");
    pg.exec("INSERT INTO sentinel VALUES (" + std::to_string(id) + ")");
    bool ok = eventually([&] { return !redis.exists(key); }, timeout);
    if (!ok)
      FAIL("pgbust did not apply the sentinel within the timeout; output:\n"
           << (daemon ? daemon->output() : "") << "\npostgres log:\n"
           << pg.log());
  }

  void set_keys(const std::vector<std::string>& keys) {
    for (const auto& k : keys) redis.set(k, "cached");
  }

  std::string confirmed_lsn() const {
    return pg
        .scalar("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '" +
                slot + "'")
        .value_or("");
  }
};

// A metric's value from /metrics at `addr` (the name with labels as exposed, e.g.
// pgbust_widenings_total{reason="slot_gap"}), or -1 when absent.
inline double metric(const std::string& addr, const std::string& name) {
  auto r = run({"curl", "-s", "--max-time", "5", "http://" + addr + "/metrics"});
  auto at = r.output.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(r.output.substr(at + name.size() + 2));
}

// The address of a daemon's metrics endpoint (E2E::listen "127.0.0.1:0"), from its log.
inline std::string metrics_address(E2E& e) {
  std::string addr;
  eventually([&] {
    std::string out = e.daemon->output();
    auto at = out.find("metrics on http://");
    if (at == std::string::npos) return false;
    at += std::string("metrics on http://").size();
    addr = out.substr(at, out.find_first_of(" \n", at) - at);
    return true;
  });
  REQUIRE_FALSE(addr.empty());
  return addr;
}

}  // namespace pgbust::test
