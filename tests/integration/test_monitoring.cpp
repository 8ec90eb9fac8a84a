// monitoring/: the alert rules pass `promtool check rules` and their unit tests, the dashboard
// is valid JSON, and every metric the dashboard and the rules query is one pgbust exports.
#include <doctest/doctest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "harness.hpp"
#include "pgbust/core/json.hpp"

using namespace pgbust::test;

namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  REQUIRE_MESSAGE(in.good(), p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::filesystem::path kDir = source_dir() / "monitoring";

// Every metric name the ops layer registers: the string literals naming pgbust_* and
// process_* families in daemon/ops/*.cpp.
std::set<std::string> registered_names() {
  std::set<std::string> out;
  static const std::regex name("\"((?:pgbust|process)_[a-z0-9_]+)\"");
  for (const auto& e : std::filesystem::directory_iterator(source_dir() / "daemon/ops")) {
    if (e.path().extension() != ".cpp") continue;
    std::string text = read_text(e.path());
    for (std::sregex_iterator it(text.begin(), text.end(), name), end; it != end; ++it)
      out.insert((*it)[1]);
  }
  return out;
}

// The histograms' series names: NAME_bucket, NAME_sum, NAME_count.
std::set<std::string> series_names(const std::set<std::string>& families) {
  std::set<std::string> out = families;
  for (const auto& f : families)
    for (const char* s : {"_bucket", "_sum", "_count"}) out.insert(f + s);
  return out;
}

// Names in `query` that look like pgbust's or process metrics and are not in `known`.
std::set<std::string> unknown_metrics(const std::string& query,
                                      const std::set<std::string>& known) {
  std::set<std::string> out;
  static const std::regex ident("[A-Za-z_:][A-Za-z0-9_:]*");
  for (std::sregex_iterator it(query.begin(), query.end(), ident), end; it != end; ++it) {
    std::string w = it->str();
    if ((w.rfind("pgbust_", 0) == 0 || w.rfind("process_", 0) == 0) && !known.count(w))
      out.insert(w);
  }
  return out;
}

// The PromQL of the alert rules: every `expr:` line.
std::vector<std::string> rule_queries() {
  std::vector<std::string> out;
  std::istringstream in(read_text(kDir / "pgbust-alerts.yml"));
  static const std::regex expr("^\\s*expr:\\s*(.+)$");
  std::smatch m;
  for (std::string line; std::getline(in, line);)
    if (std::regex_match(line, m, expr)) out.push_back(m[1]);
  return out;
}

// The PromQL of the dashboard: panel targets' expr and template variable queries.
void collect_queries(const pgbust::json::Value& v, std::vector<std::string>& out) {
  if (v.is_object()) {
    for (const auto& [k, child] : v.members()) {
      if ((k == "expr" || k == "definition" || k == "query") && child.is_string())
        out.push_back(child.text());
      else
        collect_queries(child, out);
    }
  } else if (v.is_array()) {
    for (const auto& child : v.items()) collect_queries(child, out);
  }
}

bool have(const char* program) {
  return run({"sh", "-c", std::string("command -v ") + program}).exit_code == 0;
}

}  // namespace

TEST_CASE("monitoring: promtool checks the alert rules and runs their unit tests") {
  REQUIRE_MESSAGE(have("promtool"), "promtool is missing: tests/deps.sh installs `prometheus`");
  auto check = run({"promtool", "check", "rules", (kDir / "pgbust-alerts.yml").string()});
  INFO(check.output);
  CHECK(check.exit_code == 0);
  CHECK(check.output.find("SUCCESS: 8 rules found") != std::string::npos);
  auto test = run({"promtool", "test", "rules", (kDir / "tests/pgbust-alerts.test.yml").string()});
  INFO(test.output);
  CHECK(test.exit_code == 0);
}

TEST_CASE("monitoring: the dashboard and the rules query only metrics pgbust exports") {
  auto families = registered_names();
  // The grep found the registry's names (a renamed file would make this check vacuous).
  for (const char* n : {"pgbust_commit_to_redis_seconds", "pgbust_source_up", "pgbust_redis_up",
                        "pgbust_build_info", "pgbust_config_last_reload_successful",
                        "process_cpu_seconds_total", "process_resident_memory_bytes"})
    CHECK(families.count(n) == 1);
  auto known = series_names(families);

  SUBCASE("the checker catches a name pgbust does not export") {
    CHECK(unknown_metrics("rate(pgbust_change_total[5m]) + process_open_fds", known) ==
          std::set<std::string>{"pgbust_change_total"});
  }

  SUBCASE("alert rules") {
    auto queries = rule_queries();
    CHECK(queries.size() == 8);
    for (const auto& q : queries) {
      CAPTURE(q);
      CHECK(unknown_metrics(q, known).empty());
    }
  }

  SUBCASE("dashboard") {
    auto dashboard = pgbust::json::parse(read_text(kDir / "pgbust-dashboard.json"));
    std::vector<std::string> queries;
    collect_queries(dashboard, queries);
    CHECK(queries.size() >= 12);
    std::string all;
    for (const auto& q : queries) {
      CAPTURE(q);
      CHECK(unknown_metrics(q, known).empty());
      all += q + "\n";
    }
    // What the issue asks the dashboard to show.
    for (const char* n :
         {"pgbust_replication_lag_bytes", "pgbust_replication_lag_seconds",
          "pgbust_commit_to_redis_seconds_bucket", "pgbust_changes_total", "pgbust_widenings_total",
          "pgbust_source_up", "pgbust_redis_up", "pgbust_reloads_total"})
      CHECK_MESSAGE(all.find(n) != std::string::npos, n);
  }
}

TEST_CASE("monitoring: a live scrape exposes only registered names") {
  TempDir dir;
  dir.write("rules.yaml",
            "version: 1\nrules:\n  - name: one\n    table: public.t\n    delete: [\"t:${id}\"]\n");
  auto cfg = dir.write("pgbust.yaml",
                       "postgres: {conninfo: \"host=127.0.0.1 port=1 dbname=app\"}\n"
                       "sources:\n  logical: {slot: monitoring, publication: monitoring}\n"
                       "redis: {url: \"redis://127.0.0.1:1/0\"}\n"
                       "rules: rules.yaml\n"
                       "status: {interval: 1h, listen: \"127.0.0.1:0\"}\n");
  Daemon d({"run", "--config", cfg.string()});
  REQUIRE_MESSAGE(d.wait_for_output("metrics on http://", 30s), d.output());
  std::smatch m;
  std::string out = d.output();
  REQUIRE(std::regex_search(out, m, std::regex("metrics on http://([0-9.]+:[0-9]+)")));
  auto scrape = run({"curl", "-s", "--max-time", "5", "http://" + std::string(m[1]) + "/metrics"});
  INFO(scrape.output);
  auto families = registered_names();
  std::istringstream in(scrape.output);
  int types = 0;
  static const std::regex type("# TYPE (\\S+) \\S+");
  std::smatch t;
  for (std::string line; std::getline(in, line);) {
    if (!std::regex_match(line, t, type)) continue;
    ++types;
    CHECK_MESSAGE(families.count(t[1]) == 1, t[1]);
  }
  CHECK(types >= 10);
}
