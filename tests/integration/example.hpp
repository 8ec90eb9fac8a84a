// Shared fixture for the examples' tests (test_example_*.cpp): the example's own schema.sql,
// rules and pgbust.yaml from examples/<name>/, a config derived from that file with this
// test's servers, the real pgbust binary, and a sentinel that tells when everything
// committed before it has reached Redis, whichever source the example uses.
#pragma once

#include <doctest/doctest.h>
#include <signal.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "pgbust/core/config.hpp"

namespace pgbust::test {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Example {
 public:
  Postgres pg;
  Redis redis;
  TempDir tmp;
  std::unique_ptr<Daemon> daemon;
  std::filesystem::path dir;     // examples/<name>
  std::filesystem::path config;  // the derived config the daemon runs with
  std::string key_prefix;        // redis.key_prefix of the example's config

  explicit Example(const std::string& name) : dir(source_dir() / "examples" / name) {}

  // For INFO(ex.logs()): evaluated only when an assertion fails.
  std::string logs() const {
    auto tail = [](const std::string& s) {
      return s.size() > 6000 ? s.substr(s.size() - 6000) : s;
    };
    return "pgbust output:\n" + (daemon ? tail(daemon->output()) : std::string("(not started)")) +
           "\npostgres log tail:\n" + tail(pg.log());
  }

  // Runs the example's schema.sql (or another SQL file of the example).
  void load_schema(const std::string& file = "schema.sql") { pg.exec(read_text(dir / file)); }

  // The example's config file as shipped must load, and `pgbust check` must accept it with
  // the rules it names.
  void check_shipped(const std::string& config_name = "pgbust.yaml") const {
    CHECK_NOTHROW(config::load(dir / config_name));
    auto r = run({pgbust_binary(), "check", "--config", (dir / config_name).string()});
    INFO(r.output);
    CHECK(r.exit_code == 0);
  }

  // Derives the config the test runs from examples/<name>/<config_name>: this test's
  // PostgreSQL and Redis, a temp rules.d holding copies of the example's rule files (as they
  // are) plus the sentinel rule, a temp poll state_dir, short intervals, no metrics port.
  // `rules_files`: the example's rule files to copy, relative to the example directory
  // (default: what the config's `rules:` names).
  void derive_config(const std::string& config_name = "pgbust.yaml",
                     std::vector<std::string> rules_files = {}) {
    YAML::Node root = YAML::LoadFile((dir / config_name).string());
    root["postgres"]["conninfo"] = pg.conninfo();
    root["redis"]["url"] = redis.url();
    root["redis"].remove("password_file");
    root["redis"]["command_timeout"] = "2s";
    key_prefix = root["redis"]["key_prefix"] ? root["redis"]["key_prefix"].as<std::string>() : "";
    if (rules_files.empty()) rules_files.push_back(root["rules"].as<std::string>());
    auto rules_dir = tmp.path() / "rules.d";
    std::filesystem::create_directories(rules_dir);
    for (const auto& f : rules_files) {
      auto src = dir / f;
      if (std::filesystem::is_directory(src)) {
        for (const auto& e : std::filesystem::directory_iterator(src))
          std::filesystem::copy_file(e.path(), rules_dir / e.path().filename());
      } else {
        std::filesystem::copy_file(src, rules_dir / src.filename());
      }
    }
    tmp.write("rules.d/zz-sentinel.yaml",
              "version: 1\nrules:\n  - name: sentinel\n    table: public.sentinel\n"
              "    on: [insert]\n    delete: [\"sentinel:${id}\"]\n");
    pg.exec("CREATE TABLE IF NOT EXISTS public.sentinel (id int PRIMARY KEY)");
    root["rules"] = rules_dir.string();
    YAML::Node status;
    status["interval"] = "1s";
    status["listen"] = "";
    root["status"] = status;
    YAML::Node sources = root["sources"];
    if (sources["logical"]) {
      sources["logical"]["status_interval"] = "1s";
      sources["logical"]["state_dir"] = (tmp.path() / "state").string();
    }
    if (sources["notify"] && sources["notify"]["tables"])
      sources["notify"]["tables"].push_back("public.sentinel");
    if (sources["poll"]) {
      YAML::Node poll = sources["poll"];
      poll["interval"] = "200ms";
      poll["state_dir"] = (tmp.path() / "state").string();
      // The sentinel is polled first in each round (see sync()).
      YAML::Node tables(YAML::NodeType::Sequence);
      YAML::Node s;
      s["table"] = "public.sentinel";
      s["watermark"].push_back("id");
      s["overlap"] = "0s";
      tables.push_back(s);
      for (const auto& t : poll["tables"]) tables.push_back(t);
      poll["tables"] = tables;
    }
    YAML::Emitter out;
    out << root;
    config = tmp.write("pgbust.yaml", std::string(out.c_str()) + "\n");
    poll_source_ = static_cast<bool>(sources["poll"]);
  }

  // `pgbust setup --apply` (the publication and slot, or with notify the triggers).
  void setup(bool notify = false) {
    std::vector<std::string> argv{pgbust_binary(), "setup", "--apply", "--config", config.string()};
    if (notify) argv.push_back("--notify");
    auto r = run(argv);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }

  // `pgbust check --db` against the prepared database: the example's schema, rules and setup
  // leave nothing to fix (no error, no warning: no rule will widen).
  void check_db() const {
    auto r = run({pgbust_binary(), "check", "--db", "--config", config.string()});
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(r.output.find(" 0 errors, 0 warnings") != std::string::npos);
  }

  // Starts the daemon and waits until every configured source streams and a first sync
  // went through (the first start of a NOTIFY or poll source widens once: that is done then).
  void start() {
    daemon = std::make_unique<Daemon>(std::vector<std::string>{"run", "--config", config.string()});
    bool ok = daemon->wait_for_output("streaming", 30s);
    INFO(logs());
    REQUIRE(ok);
    sync();
  }

  void stop() {
    daemon->signal(SIGTERM);
    auto code = daemon->wait(30s);
    INFO(logs());
    CHECK(code == 0);
    daemon.reset();
  }

  // Commits a sentinel row and waits until its key is gone: everything committed before is
  // then applied in Redis. The poll source reads the sentinel table first in each round, so
  // a second sentinel proves that the round which saw the first one has been applied whole.
  void sync() {
    for (int i = 0; i < (poll_source_ ? 2 : 1); ++i) {
      int id = ++sentinel_;
      std::string key = key_prefix + "sentinel:" + std::to_string(id);
      redis.set(key, "1");
      pg.exec("INSERT INTO public.sentinel VALUES (" + std::to_string(id) + ")");
      bool ok = eventually([&] { return !redis.exists(key); }, 30s);
      INFO(logs());
      REQUIRE_MESSAGE(ok, "pgbust did not apply the sentinel " << id);
    }
  }

  // Runs SQL, then waits until pgbust has applied it.
  void commit(const std::string& sql) {
    pg.exec(sql);
    sync();
  }

  // Caches a value the way the app does (SET key value EX ttl).
  void cache(const std::string& key, const std::string& value, int ttl_seconds) const {
    redis.command({"SET", key, value, "EX", std::to_string(ttl_seconds)});
  }

 private:
  int sentinel_ = 0;
  bool poll_source_ = false;
};

// Every key an application reads, cached the way it writes them; after a step, exactly the
// keys named were invalidated and every other one is still there.
struct AppKeys {
  explicit AppKeys(const Example& e) : ex(e) {}
  const Example& ex;
  std::vector<std::string> all;
  std::string value = "cached";
  int ttl_seconds = 3600;

  void cache() const {
    for (const auto& k : all) ex.cache(k, value, ttl_seconds);
  }

  // `either`: keys that may go or stay (an at-least-once repeat the step cannot pin down).
  void expect_gone(const std::vector<std::string>& gone,
                   const std::vector<std::string>& either = {}) const {
    auto in = [](const std::vector<std::string>& list, const std::string& k) {
      return std::find(list.begin(), list.end(), k) != list.end();
    };
    for (const auto& k : concat(gone, either)) REQUIRE_MESSAGE(in(all, k), "not an app key: " << k);
    for (const auto& k : gone) CHECK_MESSAGE(!ex.redis.exists(k), "should be invalidated: " << k);
    for (const auto& k : all)
      if (!in(gone, k) && !in(either, k))
        CHECK_MESSAGE(ex.redis.exists(k), "should still be cached: " << k);
  }

  static std::vector<std::string> concat(std::vector<std::string> a,
                                         const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }
};

inline std::vector<std::string> concat(const std::vector<std::string>& a,
                                       const std::vector<std::string>& b) {
  return AppKeys::concat(a, b);
}

}  // namespace pgbust::test
