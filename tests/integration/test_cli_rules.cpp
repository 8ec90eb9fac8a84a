// The command line as a process: `pgbust check` and `pgbust explain` (exit codes, stdout and
// stderr), and the option parsing every command shares.
#include <doctest/doctest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

std::string data(const std::string& name) {
  return (pgbust::test::source_dir() / "tests/data/rules" / name).string();
}

}  // namespace

TEST_CASE("check: a valid rule file") {
  auto r = run_pgbust({"check", "--rules", data("design.yaml")});
  CHECK(r.exit_code == 0);
  CAPTURE(r.err);
  CHECK(
      std::regex_match(r.out, std::regex("rules OK: 1 rule on 1 table from " + data("design.yaml") +
                                         " \\(hash [0-9a-f]{8}\\), 3 warnings\n")));
  auto warnings = lines(r.err);
  REQUIRE(warnings.size() == 3);
  CHECK(warnings[2] ==
        data("design.yaml") +
            ":3:5: warning: rule 'task-stats' needs old values of assigned_department_id, "
            "assigned_operator_id on update/delete; with REPLICA IDENTITY DEFAULT only primary-key "
            "columns are in the WAL, so unless they are in the primary key the rule widens to "
            "SCAN-DELETE task_stats:*, operator_stats:*, rev:dept:*; to avoid it: ALTER TABLE "
            "public.work_order_task REPLICA IDENTITY FULL;");
  // --quiet: errors only.
  r = run_pgbust({"check", "-q", "-r", data("design.yaml")});
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
  CHECK(r.err.empty());
}

TEST_CASE("check: a rules.d directory, and the hash follows content") {
  auto r = run_pgbust({"check", "--rules", data("rules.d")});
  CHECK(r.exit_code == 0);
  CHECK(r.out.rfind("rules OK: 3 rules on 2 tables from " + data("rules.d") + " (hash ", 0) == 0);
  TempDir dir;
  std::ifstream in(data("rules.d/10-tasks.yaml"));
  std::stringstream text;
  text << in.rdbuf();
  dir.write("a.yaml", "# a comment changes nothing\n" + text.str());
  auto same = run_pgbust({"check", "--rules", (dir.path() / "a.yaml").string()});
  dir.write("b.yaml", text.str() + "  - name: extra\n    table: t\n    delete: x\n");
  auto other = run_pgbust({"check", "--rules", (dir.path() / "b.yaml").string()});
  auto hash = [](const std::string& out) {
    std::smatch m;
    return std::regex_search(out, m, std::regex("hash ([0-9a-f]{8})")) ? m[1].str() : "";
  };
  auto tasks_only = run_pgbust({"check", "--rules", data("rules.d/10-tasks.yaml")});
  CHECK(!hash(same.out).empty());
  CHECK(hash(same.out) == hash(tasks_only.out));
  CHECK(hash(other.out) != hash(same.out));
}

TEST_CASE("check: every error, GCC style, exit 1") {
  auto r = run_pgbust({"check", "--rules", data("invalid.yaml")});
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
  const std::string f = data("invalid.yaml");
  CHECK(
      lines(r.err) ==
      std::vector<std::string>{
          f + ":5:5: error: unknown key 'delet' in a rule; did you mean 'delete'? expected name, "
              "table, on, changed, when, delete, delete_pattern, bump, publish, redelete_after, "
              "null_as, fallback, timezone, stream or stable",
          f + ":3:5: error: rule has no action; expected at least one of delete, delete_pattern, "
              "bump, publish or stream",
          f + ":9:5: error: changed: only applies to updates, but this rule's 'on' does not "
              "include update",
          f + ":10:28: error: when: expected a column, string, number, TRUE, FALSE or NULL, found "
              "end of condition",
          f + ":11:21: error: delete: unknown filter 'lowr'; did you mean 'lower'? expected one of "
              "lower, upper, trim, date[:ZONE], month[:ZONE], week_start[:ZONE], tz:ZONE, md5:N, "
              "sha256:N, default:TEXT, pybool",
          f + ":15:21: error: redelete_after: 'soon' is not a duration; expected a number with ms, "
              "s or m, from 1ms to 1 hour (e.g. 500ms, 2s)",
          f + ":12:5: error: duplicate rule name 'a'; first defined at " + f + ":3:5",
          "pgbust check: " + f + ": 7 errors",
      });
  TempDir dir;
  auto syntax = dir.write("s.yaml", "version: 1\nrules: [a, b\n");
  r = run_pgbust({"check", "--rules", syntax.string()});
  CHECK(r.exit_code == 1);
  CHECK(r.err.rfind(syntax.string() + ":3:1: error: YAML syntax error: ", 0) == 0);
  r = run_pgbust({"check", "--rules", "/nonexistent/rules.yaml"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.rfind("/nonexistent/rules.yaml: error: cannot read rule file", 0) == 0);
}

TEST_CASE("check: --config") {
  TempDir dir;
  dir.write("rules.d/r.yaml", "version: 1\nrules:\n  - name: r\n    table: t\n    delete: k\n");
  auto good = dir.write("pgbust.yaml", "redis: {key_prefix: \":1:\"}\nrules: rules.d\n");
  auto r = run_pgbust({"check", "--config", good.string()});
  CHECK(r.exit_code == 0);
  CHECK(r.out.rfind("rules OK: 1 rule on 1 table from " + (dir.path() / "rules.d").string(), 0) ==
        0);
  CHECK(r.out.find("; config OK: " + good.string()) != std::string::npos);
  // --rules overrides the config's rules.
  r = run_pgbust({"check", "--config", good.string(), "--rules", data("invalid.yaml")});
  CHECK(r.exit_code == 1);
  auto bad = dir.write("bad.yaml", "redis: {key_prefx: x}\nrules: rules.d\n");
  r = run_pgbust({"check", "--config", bad.string()});
  CHECK(r.exit_code == 1);
  CHECK(r.err.rfind(bad.string() + ":1:9: error: unknown key 'key_prefx'", 0) == 0);
}

TEST_CASE("check and explain: usage") {
  for (const char* cmd : {"check", "explain"}) {
    CAPTURE(cmd);
    auto r = run_pgbust({cmd, "--help"});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("--rules") != std::string::npos);
    CHECK(run_pgbust({cmd}).exit_code == 2);
    CHECK(run_pgbust({cmd, "--bogus"}).exit_code == 2);
    CHECK(run_pgbust({cmd, "--rules", data("design.yaml"), "stray"}).exit_code == 2);
  }
}

TEST_CASE("every command parses its options one way: the same errors and help hint") {
  struct Case {
    std::string command;
    std::vector<std::string> valid;  // options that make an otherwise good command line
    std::string help_first_line;
  };
  const Case cases[] = {
      {"run",
       {"--rules", data("design.yaml")},
       "pgbust run: keep Redis caches correct by watching PostgreSQL"},
      {"check",
       {"--rules", data("design.yaml")},
       "pgbust check: validate the rules (and the config file) before they go live"},
      {"explain",
       {"--rules", data("design.yaml"), "--table", "t", "--op", "insert"},
       "pgbust explain: print the Redis commands the rules would send for one row change"},
      {"setup",
       {"--rules", data("design.yaml"), "--offline"},
       "pgbust setup: the SQL the rules need, printed for review (or run with --apply)"},
      {"status",
       {"--listen", "127.0.0.1:1"},
       "pgbust status: ask the running daemon how it is doing"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.command);
    const std::string hint = " (see pgbust " + c.command + " --help)\n";
    // A stray argument: no command takes positional arguments.
    std::vector<std::string> args = {c.command};
    args.insert(args.end(), c.valid.begin(), c.valid.end());
    args.push_back("stray");
    auto r = run_pgbust(args);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err == "pgbust " + c.command + ": unexpected argument 'stray'" + hint);
    // An unknown flag.
    r = run_pgbust({c.command, "--bogus"});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err == "pgbust " + c.command + ": unrecognised option '--bogus'" + hint);
    // A flag without its value.
    r = run_pgbust({c.command, "--config"});
    CHECK(r.exit_code == 2);
    CHECK(r.err == "pgbust " + c.command +
                       ": the required argument for option '--config' is missing" + hint);
    // Nothing to work on.
    r = run_pgbust({c.command});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("pgbust " + c.command + ": give --", 0) == 0);
    CHECK(r.err.size() > hint.size());
    CHECK(r.err.substr(r.err.size() - hint.size()) == hint);
    CHECK(lines(r.err).size() == 1);
    // --help and -h: the help on stdout, exit 0, nothing on stderr.
    for (const char* help : {"--help", "-h"}) {
      CAPTURE(help);
      r = run_pgbust({c.command, help});
      CHECK(r.exit_code == 0);
      CHECK(r.err.empty());
      REQUIRE(!lines(r.out).empty());
      CHECK(lines(r.out).front() == c.help_first_line);
      CHECK(r.out.find("\noptions:\n") != std::string::npos);
      CHECK(r.out.find("  -h [ --help ]") != std::string::npos);
    }
  }
  // Without a command, pgbust runs the daemon: the same parser, the same words.
  auto r = run_pgbust({"--bogus"});
  CHECK(r.exit_code == 2);
  CHECK(r.err == "pgbust run: unrecognised option '--bogus' (see pgbust run --help)\n");
  r = run_pgbust({"frobnicate"});
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK(r.err == "pgbust: unknown command 'frobnicate' (see pgbust --help)\n");
  r = run_pgbust({"--help"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.rfind("usage: pgbust [COMMAND] [OPTIONS]\n", 0) == 0);
}

TEST_CASE("explain: a move invalidates both groups: deletes, then bumps, as the daemon") {
  auto r = run_pgbust(
      {"explain", "--rules", data("design.yaml"), "--table", "work_order_task", "--op", "update",
       "--old",
       R"({"id": 1, "status": "open", "assigned_department_id": 5, "assigned_operator_id": 9})",
       "--new",
       R"({"id": 1, "status": "open", "assigned_department_id": 7, "assigned_operator_id": 9})"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(lines(r.out) ==
        std::vector<std::string>{
            "# note: no rule of public.work_order_task reads column 'id'",
            "# rule task-stats matched",
            "UNLINK task_stats:5",
            "UNLINK task_stats:7",
            "UNLINK operator_stats:9",
            "SCAN-DELETE dashboard:*",
            "# rule task-stats: its deletes are sent again after 500ms",
            "# bumps: once the keyspace passes above have ended",
            "INCR rev:dept:5",
            "INCR rev:dept:7",
            "PUBLISH cache-invalidation '{\"source\":\"explain\",\"position\":\"\",\"tables\":"
            "[\"public.work_order_task\"],\"keys\":[\"task_stats:5\",\"task_stats:7\","
            "\"operator_stats:9\"],\"patterns\":[\"dashboard:*\"],\"revisions\":[\"rev:dept:5\","
            "\"rev:dept:7\"],\"truncated\":false}'",
        });
  // Nothing the rule watches changed.
  r = run_pgbust({"explain", "-r", data("design.yaml"), "-t", "public.work_order_task", "--op",
                  "update", "--old", R"({"status": "open", "assigned_department_id": 5})", "--new",
                  R"({"status": "open", "assigned_department_id": 5})"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "# no rule matched\n");
}

TEST_CASE("explain: widening, key prefix, filters, NULL, quoting") {
  // DEFAULT identity: no old row, id is the key.
  auto r = run_pgbust({"explain", "-r", data("rules.d"), "-t", "auth.users", "--op", "update",
                       "--new", R"({"id": 3, "email": "Ann@Example.com"})", "--key", "id",
                       "--key-prefix", ":1:"});
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out) == std::vector<std::string>{
                            "# rule user-profile matched",
                            "# widened: rule user-profile: old.email unknown (old value not in the "
                            "WAL (REPLICA IDENTITY DEFAULT)); keys widened to patterns",
                            "UNLINK :1:profile:3",
                            "UNLINK :1:avatar:257c57037d38",  // md5("ann@example.com")[:12]
                            "SCAN-DELETE :1:avatar:*",
                            "SCAN-DELETE :1:feed:3:*",
                        });
  // TRUNCATE with a fallback; week_start; values that need quoting; escaping in patterns.
  r = run_pgbust({"explain", "-r", data("rules.d"), "-t", "work_order_task", "--op", "truncate"});
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out) ==
        std::vector<std::string>{
            "# rule task-detail matched",
            "# widened: rule task-detail: id unknown (TRUNCATE); keys widened to patterns",
            "SCAN-DELETE task:*",
        });
  r = run_pgbust({"explain", "-r", data("rules.d"), "-t", "auth.users", "--op", "delete", "--old",
                  R"({"id": "a b*'", "email": null})"});
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out) == std::vector<std::string>{
                            "# rule user-profile matched",
                            "UNLINK \"profile:a b*'\"",
                            "UNLINK avatar:None",
                            "SCAN-DELETE \"feed:a b\\\\*':*\"",
                        });
}

TEST_CASE("explain: keys in another time zone, and a misspelt zone") {
  TempDir dir;
  auto rules = dir.write("tz.yaml", R"(version: 1
rules:
  - name: daily
    table: orders
    timezone: America/New_York
    delete: ["day:${created_at|date}", "at:${created_at|tz:Asia/Kolkata}"]
)");
  auto r = run_pgbust({"explain", "-r", rules.string(), "-t", "orders", "--op", "insert", "--new",
                       R"({"created_at": "2024-01-01 02:30:00+00"})"});
  CHECK(r.exit_code == 0);
  CAPTURE(r.err);
  CHECK(lines(r.out) == std::vector<std::string>{
                            "# rule daily matched",
                            "UNLINK day:2023-12-31",
                            "UNLINK 'at:2024-01-01 08:00:00+05:30'",
                        });
  auto bad = dir.write("bad.yaml", R"(version: 1
rules:
  - name: daily
    table: orders
    delete: "day:${created_at|date:Europe/Berlim}"
)");
  r = run_pgbust({"check", "--rules", bad.string()});
  CHECK(r.exit_code == 1);
  CHECK(r.err.rfind(bad.string() +
                        ":5:36: error: delete: filter 'date': unknown time zone 'Europe/Berlim'; "
                        "did you mean 'Europe/Berlin'?",
                    0) == 0);
}

TEST_CASE("explain: a widened bump deletes rev:...:* first, then bumps (the daemon's order)") {
  // Issue 14 part 4: explain printed the bump of the first rule before the second rule's
  // deletes; the daemon bumps only once every delete and keyspace pass has ended.
  TempDir dir;
  auto rules = dir.write("bump.yaml", R"(version: 1
rules:
  - name: dept-rev
    table: tasks
    bump: "rev:dept:${dept}"
  - name: task
    table: tasks
    delete: "task:${id}"
)");
  auto r = run_pgbust({"explain", "-r", rules.string(), "-t", "tasks", "--op", "update", "--new",
                       R"({"id": 1, "dept": 7})", "--key", "id"});
  CHECK(r.exit_code == 0);
  CAPTURE(r.err);
  CHECK(lines(r.out) ==
        std::vector<std::string>{
            "# rule dept-rev matched",
            "# widened: rule dept-rev: old.dept unknown (old value not in the WAL (REPLICA "
            "IDENTITY DEFAULT)); keys widened to patterns",
            "SCAN-DELETE rev:dept:*",
            "# rule task matched",
            "UNLINK task:1",
            "# bumps: once the keyspace passes above have ended",
            "INCR rev:dept:7",
        });
}

TEST_CASE("explain: bad input is a clear error, exit 1") {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const std::string rules = data("design.yaml");
  const Case cases[] = {
      {{"--table", "work_order_task", "--op", "update", "--new", "{\"id\": 1,}"},
       "pgbust explain: --new: invalid JSON at line 1 column 10 (byte 9): expected a string key "
       "in object, found '}'\n"},
      {{"--table", "work_order_task", "--op", "update", "--new", "[1]"},
       "pgbust explain: --new: expected a JSON object of column values, e.g. {\"id\": 5}, found "
       "array\n"},
      {{"--table", "work_order_task", "--op", "insert", "--new", "{\"assigned_departmen_id\": 5}"},
       "pgbust explain: --new: no rule of public.work_order_task reads column "
       "'assigned_departmen_id'; did you mean 'assigned_department_id'?\n"},
      {{"--table", "work_order_task", "--op", "insert", "--new", "{\"status\": {\"a\": 1}}"},
       "pgbust explain: --new: column \"status\" is object; expected the column's PostgreSQL text "
       "as a string (or a number, boolean or null)\n"},
      {{"--table", "work_order_task", "--op", "insert", "--old", "{}"},
       "pgbust explain: --old: insert has no old row\n"},
      {{"--table", "work_order_task", "--op", "upsert"},
       "pgbust explain: --op 'upsert': expected insert, update, delete or truncate\n"},
      {{"--table", "a.b.c", "--op", "insert"},
       "pgbust explain: --table 'a.b.c': unexpected '.' in table name; expected schema.table\n"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"explain", "--rules", rules};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CAPTURE(c.error);
    auto r = run_pgbust(args);
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
    CHECK(r.err == c.error);
  }
  auto r =
      run_pgbust({"explain", "--rules", data("invalid.yaml"), "--table", "t", "--op", "insert"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("invalid.yaml:5:5: error: unknown key 'delet'") != std::string::npos);
  // A table no rule names is not an error: nothing to do.
  r = run_pgbust(
      {"explain", "--rules", rules, "--table", "other", "--op", "insert", "--new", "{}"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "# no rule names table public.other\n");
}

TEST_CASE("check: --config refuses a Redis URL that run refuses, with the same words") {
  TempDir dir;
  dir.write("rules.d/r.yaml", "version: 1\nrules:\n  - name: r\n    table: t\n    delete: k\n");
  const char* bad_redis[] = {
      "redis: {url: \"redis://:pw@tail@127.0.0.1:1/x\"}\n",
      "redis: {url: \"redis://127.0.0.1:99999/0\"}\n",
      "redis: {url: \"rediss://127.0.0.1/0\", tls: {ca_file: /nonexistent/pgbust-ca.pem}}\n",
      "redis: {url: \"redis://app@127.0.0.1/0\"}\n",
      "redis: {url: \"redis://127.0.0.1/0\", password_file: /nonexistent/pgbust-pw}\n",
      "redis: {url: \"redis://127.0.0.1/0\", command_timeout: 0s}\n",
  };
  for (const char* redis : bad_redis) {
    CAPTURE(redis);
    auto cfg = dir.write("pgbust.yaml", std::string(redis) + "rules: rules.d\n");
    auto check = run_pgbust({"check", "--config", cfg.string()});
    auto run = run_pgbust({"run", "--config", cfg.string()});
    CAPTURE(check.err);
    CAPTURE(run.err);
    CHECK(run.exit_code != 0);
    CHECK(check.exit_code == 1);
    CHECK(check.out.find("config OK") == std::string::npos);
    // The reason run gives (its last line) is in check's message too.
    auto why = lines(run.err).empty() ? "" : lines(run.err).back();
    auto colon = why.find("redis");
    REQUIRE(colon != std::string::npos);
    CHECK(check.err.find(why.substr(colon)) != std::string::npos);
    CHECK(check.err.find("tail") == std::string::npos);
    CHECK(run.err.find("tail") == std::string::npos);
  }
}

// Defect (issue 15, part 5): an update without --old printed a widening of the primary key
// the daemon never does: with REPLICA IDENTITY DEFAULT an absent old tuple means the key did
// not change, so old id = new id; only the other old values are unknown.
TEST_CASE("explain: the replica identity decides what the old row carries, as in the daemon") {
  auto r = run_pgbust({"explain", "-r", data("design.yaml"), "-t", "work_order_task", "--op",
                       "update", "--new",
                       R"({"id": 1, "status": "open", "assigned_department_id": 7,
                           "assigned_operator_id": 9})"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  const std::vector<std::string> default_identity = {
      "# rule task-stats matched",
      "# widened: rule task-stats: old.assigned_department_id, old.assigned_operator_id unknown "
      "(old value not in the WAL (REPLICA IDENTITY DEFAULT)); keys widened to patterns",
      "UNLINK task_stats:7",
      "UNLINK operator_stats:9",
      "SCAN-DELETE task_stats:*",
      "SCAN-DELETE operator_stats:*",
      "SCAN-DELETE dashboard:*",
      "SCAN-DELETE rev:dept:*",
      "INCR rev:dept:7",
  };
  auto commands = [](const std::string& out) {
    std::vector<std::string> v;
    for (const auto& l : lines(out))
      if (l.rfind("# rule", 0) == 0 || l.rfind("# widened", 0) == 0 ||
          (l[0] != '#' && l.rfind("PUBLISH", 0) != 0))
        v.push_back(l);
    // The redelete note follows the rule's deletes, before the bumps (the daemon's order).
    std::erase_if(
        v, [](const std::string& l) { return l.rfind("# rule task-stats: its deletes", 0) == 0; });
    return v;
  };
  CHECK(commands(r.out) == default_identity);
  // The primary key (id) carried over: a rule keyed by it renders exactly.
  r = run_pgbust({"explain", "-r", data("rules.d"), "-t", "auth.users", "--op", "update", "--new",
                  R"({"id": 3, "email": "ann@example.com"})"});
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out) == std::vector<std::string>{
                            "# assuming the primary key is (id); give --key or --db to say "
                            "otherwise",
                            "# rule user-profile matched",
                            "# widened: rule user-profile: old.email unknown (old value not in "
                            "the WAL (REPLICA IDENTITY DEFAULT)); keys widened to patterns",
                            "UNLINK profile:3",
                            "UNLINK avatar:257c57037d38",
                            "SCAN-DELETE avatar:*",
                            "SCAN-DELETE feed:3:*",
                        });
  // --identity default with both rows: the key did not change, so the WAL has no old row and
  // the given old values are not what the daemon sees.
  r = run_pgbust(
      {"explain", "-r", data("design.yaml"), "-t", "work_order_task", "--op", "update",
       "--identity", "default", "--key", "id", "--old",
       R"({"id": 1, "status": "open", "assigned_department_id": 5, "assigned_operator_id": 9})",
       "--new",
       R"({"id": 1, "status": "open", "assigned_department_id": 7, "assigned_operator_id": 9})"});
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out).at(0) ==
        "# REPLICA IDENTITY DEFAULT: the key (id) did not change, so the WAL carries no old "
        "row: old status, assigned_department_id, assigned_operator_id unknown");
  CHECK(commands(r.out) == default_identity);
  // full: every old value; index:COLUMNS: the index's columns.
  r = run_pgbust(
      {"explain", "-r", data("design.yaml"), "-t", "work_order_task", "--op", "update",
       "--identity", "full", "--old",
       R"({"id": 1, "status": "open", "assigned_department_id": 5, "assigned_operator_id": 9})",
       "--new",
       R"({"id": 1, "status": "open", "assigned_department_id": 7, "assigned_operator_id": 9})"});
  CHECK(r.exit_code == 0);
  CHECK(commands(r.out) ==
        std::vector<std::string>{"# rule task-stats matched", "UNLINK task_stats:5",
                                 "UNLINK task_stats:7", "UNLINK operator_stats:9",
                                 "SCAN-DELETE dashboard:*", "INCR rev:dept:5", "INCR rev:dept:7"});
  r = run_pgbust(
      {"explain", "-r", data("design.yaml"), "-t", "work_order_task", "--op", "delete",
       "--identity", "index:assigned_department_id", "--old",
       R"({"id": 1, "status": "open", "assigned_department_id": 5, "assigned_operator_id": 9})"});
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out).at(1) ==
        "# REPLICA IDENTITY USING INDEX: the WAL carries the deleted row's key "
        "(assigned_department_id) and no other value: old id, status, assigned_operator_id "
        "unknown");
  CHECK(r.out.find("UNLINK task_stats:5\nSCAN-DELETE operator_stats:*\n") != std::string::npos);
  r = run_pgbust({"explain", "-r", data("design.yaml"), "-t", "work_order_task", "--op", "update",
                  "--identity", "full", "--new", "{}"});
  CHECK(r.exit_code == 1);
  CHECK(r.err ==
        "pgbust explain: --identity full: the WAL carries the whole old row of an update; give "
        "--old\n");
  r = run_pgbust({"explain", "-r", data("design.yaml"), "-t", "work_order_task", "--op", "update",
                  "--identity", "nothing", "--new", "{}"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.rfind("pgbust explain: --identity 'nothing': REPLICA IDENTITY NOTHING: ", 0) == 0);
}

TEST_CASE("explain: a stream gets the same message as one entry, after the publishes") {
  TempDir dir;
  auto rules = dir.write("rules.yaml", R"(version: 1
rules:
  - name: task-log
    table: work_order_task
    delete: "task:${id}"
    publish: inv
    stream: inv-log
  - name: stream-only
    table: work_order_task
    bump: "rev:${id}"
    stream: inv-log
)");
  auto r = run_pgbust({"explain", "-r", rules.string(), "-t", "work_order_task", "--op", "insert",
                       "--new", R"({"id": 4})"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(lines(r.out) ==
        std::vector<std::string>{
            "# rule task-log matched",
            "UNLINK task:4",
            "# rule stream-only matched",
            "INCR rev:4",
            "PUBLISH inv '{\"source\":\"explain\",\"position\":\"\",\"tables\":[\"public."
            "work_order_task\"],\"keys\":[\"task:4\"],\"patterns\":[],\"revisions\":[],"
            "\"truncated\":false}'",
            "XADD inv-log * message '{\"source\":\"explain\",\"position\":\"\",\"tables\":"
            "[\"public.work_order_task\"],\"keys\":[\"task:4\"],\"patterns\":[],\"revisions\":"
            "[\"rev:4\"],\"truncated\":false}'",
        });
}

TEST_CASE("explain: a stable column keeps an update exact under DEFAULT identity") {
  TempDir dir;
  const std::string rule = R"(version: 1
rules:
  - name: notes
    table: notes
    delete: ["notes:${tenant_id}", "note:${id}:${body|md5:4}"]
)";
  auto plain = dir.write("plain.yaml", rule);
  auto stable = dir.write("stable.yaml", rule + "    stable: [tenant_id]\n");
  const std::vector<std::string> args = {
      "-t",    "notes", "--op",  "update",
      "--key", "id",    "--new", R"({"id": 1, "tenant_id": 7, "body": "b"})"};
  auto explain = [&](const std::filesystem::path& rules) {
    std::vector<std::string> a = {"explain", "-r", rules.string()};
    a.insert(a.end(), args.begin(), args.end());
    return run_pgbust(a);
  };
  auto r = explain(plain);
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out) == std::vector<std::string>{
                            "# rule notes matched",
                            "# widened: rule notes: old.tenant_id, old.body unknown (old value not "
                            "in the WAL (REPLICA IDENTITY DEFAULT)); keys widened to patterns",
                            "UNLINK notes:7",
                            "UNLINK note:1:92eb",
                            "SCAN-DELETE notes:*",
                            "SCAN-DELETE note:1:*",
                        });
  r = explain(stable);
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out) == std::vector<std::string>{
                            "# rule notes matched",
                            "# widened: rule notes: old.body unknown (old value not in the WAL "
                            "(REPLICA IDENTITY DEFAULT)); keys widened to patterns",
                            "UNLINK notes:7",
                            "UNLINK note:1:92eb",
                            "SCAN-DELETE note:1:*",
                        });
}
