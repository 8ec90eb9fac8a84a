// `pgbust test RULES TESTS...` as a process: passing and failing cases, the diff's exact text
// at FILE:LINE, includes/excludes against patterns, invalid test files, exit codes.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

constexpr const char* kRules = R"(version: 1
rules:
  - name: task-stats
    table: work_order_task
    changed: [assigned_department_id]
    delete: "task_stats:${assigned_department_id}"
    bump: "rev:dept:${assigned_department_id}"
    publish: inv
  - name: task-detail
    table: work_order_task
    delete: "task:${id}"
)";

}  // namespace

TEST_CASE("test: passing cases, exit 0") {
  TempDir dir;
  auto rules = dir.write("rules.yaml", kRules);
  auto tests = dir.write("t.yaml", R"(key_prefix: ":1:"
tests:
  - name: move
    table: work_order_task
    op: update
    identity: full
    old: {id: 1, assigned_department_id: 5}
    new: {id: 1, assigned_department_id: 7}
    expect:
      - UNLINK :1:task_stats:5
      - UNLINK :1:task_stats:7
      - UNLINK :1:task:1
      - INCR :1:rev:dept:5
      - INCR :1:rev:dept:7
      - PUBLISH inv
  - name: default identity keeps the key
    table: work_order_task
    op: update
    new: {id: 1, assigned_department_id: 7}
    includes: [":1:task:1", ":1:task_stats:9"]
    excludes: [":1:task:2"]
)");
  auto r = run_pgbust({"test", rules.string(), tests.string()});
  CAPTURE(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "pgbust test: 2 tests passed\n");
  r = run_pgbust({"test", "-q", rules.string(), tests.string()});
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
}

TEST_CASE("test: a failing case prints a diff at FILE:LINE, exit 1") {
  TempDir dir;
  auto rules = dir.write("rules.yaml", kRules);
  auto tests = dir.write("t.yaml", R"(tests:
  - name: passes
    table: work_order_task
    op: delete
    identity: full
    old: {id: 1, assigned_department_id: 5}
    includes: [task:1]
  - name: the app's key changed
    table: work_order_task
    op: update
    identity: full
    old: {id: 1, assigned_department_id: 5}
    new: {id: 1, assigned_department_id: 7}
    expect:
      - UNLINK task_stats:5
      - UNLINK dept_stats:7
      - UNLINK task:1
      - INCR rev:dept:5
      - INCR rev:dept:7
  - name: a pattern covers what must stay
    table: work_order_task
    op: update
    identity: default
    key: [id]
    new: {id: 1, assigned_department_id: 7}
    includes: [task:2]
    excludes: [task_stats:9, task:1]
)");
  auto r = run_pgbust({"test", rules.string(), tests.string()});
  CHECK(r.exit_code == 1);
  CHECK(r.err.empty());
  const std::string f = tests.string();
  CHECK(lines(r.out) ==
        std::vector<std::string>{
            f + ":8: test 'the app's key changed' failed",
            "  expect (- expected, + sent):",
            "    UNLINK task_stats:5",
            "  - UNLINK dept_stats:7",
            "  + UNLINK task_stats:7",
            "    UNLINK task:1",
            "    INCR rev:dept:5",
            "    INCR rev:dept:7",
            "  + PUBLISH inv '{\"source\":\"explain\",\"position\":\"\",\"tables\":[\"public."
            "work_order_task\"],\"keys\":[\"task_stats:5\",\"task_stats:7\"],\"patterns\":[],"
            "\"revisions\":[\"rev:dept:5\",\"rev:dept:7\"],\"truncated\":false}'",
            "  (rules that fired: task-stats, task-detail)",
            f + ":20: test 'a pattern covers what must stay' failed",
            "  includes: task:2 is not invalidated",
            "  excludes: task_stats:9 is invalidated by SCAN-DELETE task_stats:*",
            "  excludes: task:1 is invalidated by UNLINK task:1",
            "  (rules that fired: task-stats, task-detail)",
            "  # widened: rule task-stats: old.assigned_department_id unknown (old value not in "
            "the WAL (REPLICA IDENTITY DEFAULT)); keys widened to patterns",
            "pgbust test: 2 of 3 tests failed",
        });
}

TEST_CASE("test: invalid test files and usage") {
  TempDir dir;
  auto rules = dir.write("rules.yaml", kRules);
  auto bad = dir.write("bad.yaml", R"(tests:
  - name: typo
    table: work_order_task
    op: insert
    expct: []
)");
  auto r = run_pgbust({"test", rules.string(), bad.string()});
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err) ==
        std::vector<std::string>{
            bad.string() +
                ":5:5: error: unknown key 'expct' in a test case; did you mean 'expect'? expected "
                "name, table, op, identity, source, time_zone, key, old, new, expect, includes "
                "or excludes",
            "pgbust test: 1 invalid test file",
        });
  auto nothing = dir.write("nothing.yaml", "tests:\n  - {name: n, table: t, op: insert}\n");
  r = run_pgbust({"test", rules.string(), nothing.string()});
  CHECK(r.exit_code == 1);
  CHECK(lines(r.err).at(0) == nothing.string() +
                                  ":2:5: error: test 'n' checks nothing; give expect, includes "
                                  "or excludes");
  r = run_pgbust({"test", rules.string()});
  CHECK(r.exit_code == 2);
  CHECK(r.err ==
        "pgbust test: give the rules (file or rules.d) and test files (see pgbust test --help)\n");
  r = run_pgbust({"test", "--help"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.rfind("pgbust test: run table-driven tests of the rules\n", 0) == 0);
}

namespace {

constexpr const char* kDailyRules = R"(version: 1
rules:
  - name: daily
    table: events
    delete: ["day:${at|date}", "at:${at}"]
)";

}  // namespace

TEST_CASE("test: a case's source decides what is known of the old row") {
  TempDir dir;
  auto rules = dir.write("rules.yaml", kRules);
  auto tests = dir.write("t.yaml", R"(tests:
  - name: poll update knows the key only
    table: work_order_task
    op: update
    source: poll
    new: {id: 1, assigned_department_id: 7}
    expect:
      - UNLINK task_stats:7
      - SCAN-DELETE task_stats:*
      - SCAN-DELETE rev:dept:*
      - UNLINK task:1
      - INCR rev:dept:7
      - PUBLISH inv
  - name: poll delete widens every rule of the table
    table: work_order_task
    op: delete
    source: poll
    expect:
      - SCAN-DELETE task_stats:*
      - SCAN-DELETE rev:dept:*
      - SCAN-DELETE task:*
      - PUBLISH inv
  - name: notify sends the whole old row
    table: work_order_task
    op: update
    source: notify
    old: {id: 1, assigned_department_id: 5}
    new: {id: 1, assigned_department_id: 7}
    expect:
      - UNLINK task_stats:5
      - UNLINK task_stats:7
      - UNLINK task:1
      - INCR rev:dept:5
      - INCR rev:dept:7
      - PUBLISH inv
)");
  auto r = run_pgbust({"test", rules.string(), tests.string()});
  CAPTURE(r.out);
  CAPTURE(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "pgbust test: 3 tests passed\n");
}

TEST_CASE("test: time_zone turns the case's timestamptz values into pgbust's UTC text") {
  TempDir dir;
  auto rules = dir.write("rules.yaml", kDailyRules);
  auto tests = dir.write("t.yaml", R"(tests:
  - name: half past midnight in Berlin is the day before in UTC
    table: events
    op: insert
    time_zone: Europe/Berlin
    new: {id: 1, at: "2024-03-31 00:30:00+01"}
    expect:
      - UNLINK day:2024-03-30
      - UNLINK 'at:2024-03-30 23:30:00+00'
  - name: the app expected the local day
    table: events
    op: insert
    source: notify
    time_zone: Europe/Berlin
    new: {id: 1, at: "2024-03-31 00:30:00.25+01"}
    expect:
      - UNLINK day:2024-03-31
)");
  auto r = run_pgbust({"test", rules.string(), tests.string()});
  CAPTURE(r.err);
  CHECK(r.exit_code == 1);
  const std::string f = tests.string();
  CHECK(lines(r.out) == std::vector<std::string>{
                            f + ":10: test 'the app expected the local day' failed",
                            "  expect (- expected, + sent):",
                            "  - UNLINK day:2024-03-31",
                            "  + UNLINK day:2024-03-30",
                            "  + UNLINK 'at:2024-03-30 23:30:00.25+00'",
                            "  (source notify, values written in time zone Europe/Berlin)",
                            "  (rules that fired: daily)",
                            "pgbust test: 1 of 2 tests failed",
                        });
}

TEST_CASE("test: bad source and time_zone values name their position") {
  TempDir dir;
  auto rules = dir.write("rules.yaml", kDailyRules);
  auto expect_error = [&](const std::string& yaml, const std::string& error) {
    auto file = dir.write("bad.yaml", yaml);
    auto r = run_pgbust({"test", rules.string(), file.string()});
    CHECK(r.exit_code == 1);
    CHECK(lines(r.err) == std::vector<std::string>{file.string() + ":" + error,
                                                   "pgbust test: 1 invalid test file"});
  };
  expect_error("tests:\n  - {name: n, table: events, op: insert, source: wal, expect: []}\n",
               "2:50: error: source 'wal': expected logical, notify or poll");
  expect_error(
      "tests:\n  - name: n\n    table: events\n    op: insert\n    time_zone: Europe/Berlin\n"
      "    new: {id: 1, at: \"2024-07-01 12:00:00+01\"}\n    expect: []\n",
      "6:22: error: new: column 'at': '2024-07-01 12:00:00+01' is not a time as Europe/Berlin "
      "prints it: its UTC offset there at that instant is +02");
  auto file = dir.write("zone.yaml",
                        "tests:\n  - {name: n, table: events, op: insert, time_zone: Europe/Berln,"
                        " expect: []}\n");
  auto r = run_pgbust({"test", rules.string(), file.string()});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find(file.string() + ":2:53: error: time_zone: ") == 0);
  CHECK(r.err.find("Europe/Berlin") != std::string::npos);  // the closest zone is suggested
  // A poll case cannot give an old row: the case fails and says why.
  auto poll = dir.write("poll.yaml",
                        "tests:\n  - name: n\n    table: events\n    op: update\n    source: poll\n"
                        "    old: {id: 1}\n    new: {id: 1}\n    expect: []\n");
  r = run_pgbust({"test", rules.string(), poll.string()});
  CHECK(r.exit_code == 1);
  CHECK(lines(r.out).at(1) ==
        "  old: the poll source sees only the row as it is now (an update's old row is its key, "
        "other old values unknown); leave old out");
}
