// `pgbust explain --db` against a real PostgreSQL and the real daemon: the same UPDATE is
// explained from the database (read-only) and then run, and what reached Redis is exactly
// what explain said, under REPLICA IDENTITY DEFAULT (widening) and FULL (exact keys).
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "e2e.hpp"
#include "pgbust/rules/rules.hpp"

using namespace pgbust::test;

namespace {

constexpr const char* kRules = R"(version: 1
rules:
  - name: task-stats
    table: task
    changed: [dept]
    delete: ["task_stats:${dept}", "task:${id}"]
    bump: "rev:dept:${dept}"
)";

struct Predicted {
  std::vector<std::string> unlink, patterns, incr;
  bool deletes(const std::string& key) const {
    for (const auto& k : unlink)
      if (k == key) return true;
    for (const auto& p : patterns)
      if (pgbust::rules::glob_match(p, key)) return true;
    return false;
  }
  bool bumps(const std::string& key) const {
    return std::find(incr.begin(), incr.end(), key) != incr.end();
  }
};

Predicted parse(const std::string& out) {
  Predicted p;
  for (const auto& l : lines(out)) {
    auto arg = l.substr(l.find(' ') + 1);
    if (l.rfind("UNLINK ", 0) == 0) p.unlink.push_back(arg);
    if (l.rfind("SCAN-DELETE ", 0) == 0) p.patterns.push_back(arg);
    if (l.rfind("INCR ", 0) == 0) p.incr.push_back(arg);
  }
  return p;
}

const std::vector<std::string> kKeys = {"task_stats:5", "task_stats:7", "task_stats:8",
                                        "task:1",       "task:2",       "other:1"};
const std::vector<std::string> kCounters = {"rev:dept:5", "rev:dept:7", "rev:dept:8"};

void seed(E2E& e) {
  for (const auto& k : kKeys) e.redis.set(k, "cached");
  for (const auto& k : kCounters) e.redis.set(k, "100");
}

// Runs `explain --db`, then the UPDATE itself, and checks Redis against the prediction.
std::string explain_then_update(E2E& e, const std::string& where, const std::string& set) {
  seed(e);
  auto r = run_pgbust({"explain", "--config", (e.dir.path() / "pgbust.yaml").string(), "--db",
                       "--table", "task", "--where", where, "--set", set});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  // Read-only: nothing was written (the row is as it was, the daemon saw no change).
  e.sync();
  for (const auto& k : kKeys) CHECK(e.redis.exists(k));
  Predicted p = parse(r.out);
  e.pg.exec("UPDATE task SET " + set + " WHERE " + where);
  e.sync();
  INFO(r.out);
  INFO(e.logs());
  for (const auto& k : kKeys) {
    INFO("key " << k);
    CHECK(e.redis.exists(k) == !p.deletes(k));
  }
  for (const auto& k : kCounters) {
    INFO("counter " << k);
    auto v = e.redis.command({"GET", k});
    if (p.bumps(k))  // after a pattern delete, re-seeded from the clock
      CHECK((v && *v != "100" && (p.deletes(k) || *v == "101")));
    else if (p.deletes(k))
      CHECK(!v);
    else
      CHECK(v == std::optional<std::string>("100"));
  }
  return r.out;
}

}  // namespace

TEST_CASE("explain --db agrees with the daemon under the table's real replica identity") {
  E2E e;
  e.pg.exec(
      "CREATE TABLE task (id int PRIMARY KEY, dept int, title text);"
      "INSERT INTO task VALUES (1, 5, 'a'), (2, 8, 'b')");
  e.start(kRules, "task");

  // DEFAULT: the key did not change, so the WAL carries no old row: old dept is unknown.
  auto out = explain_then_update(e, "id = 1", "dept = dept + 2");
  CHECK(lines(out) == std::vector<std::string>{
                          "# REPLICA IDENTITY DEFAULT (primary key id)",
                          "# row 1 of 1: id = 1",
                          "# REPLICA IDENTITY DEFAULT: the key (id) did not change, so the WAL "
                          "carries no old row: old dept unknown",
                          "# rule task-stats matched",
                          "# widened: rule task-stats: old.dept unknown (old value not in the WAL "
                          "(REPLICA IDENTITY DEFAULT)); keys widened to patterns",
                          "UNLINK task_stats:7",
                          "UNLINK task:1",
                          "SCAN-DELETE task_stats:*",
                          "SCAN-DELETE rev:dept:*",
                          "# bumps: once the keyspace passes above have ended",
                          "INCR rev:dept:7",
                      });
  CHECK(e.pg.scalar("SELECT dept::text FROM task WHERE id = 1") == std::optional<std::string>("7"));

  // FULL: every old value is in the WAL; both departments exactly, nothing else.
  e.pg.exec("ALTER TABLE task REPLICA IDENTITY FULL");
  out = explain_then_update(e, "id = 1", "dept = 5");
  CHECK(lines(out) == std::vector<std::string>{
                          "# REPLICA IDENTITY FULL",
                          "# row 1 of 1: id = 1",
                          "# rule task-stats matched",
                          "UNLINK task_stats:7",
                          "UNLINK task_stats:5",
                          "UNLINK task:1",
                          "INCR rev:dept:7",
                          "INCR rev:dept:5",
                      });

  // A change the rule does not watch, on two rows.
  out = explain_then_update(e, "id IN (1, 2)", "title = upper(title)");
  CHECK(lines(out) == std::vector<std::string>{"# REPLICA IDENTITY FULL", "# row 1 of 2: id = 1",
                                               "# no rule matched", "# row 2 of 2: id = 2",
                                               "# no rule matched"});

  // Bad input: the server's own error, the column's name, a write attempt refused.
  auto config = (e.dir.path() / "pgbust.yaml").string();
  auto r = run_pgbust(
      {"explain", "-c", config, "--db", "-t", "task", "--where", "idd = 1", "--set", "dept = 1"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("pgbust explain: reading the rows of public.task where idd = 1 on ") == 0);
  CHECK(r.err.find("column \"idd\" does not exist") != std::string::npos);
  r = run_pgbust(
      {"explain", "-c", config, "--db", "-t", "task", "--where", "id = 1", "--set", "dpt = 1"});
  CHECK(r.exit_code == 1);
  CHECK(r.err ==
        "pgbust explain: --set 'dpt = 1': public.task has no column 'dpt'; did you mean "
        "'dept'?\n");
  e.pg.exec("CREATE SEQUENCE s");
  r = run_pgbust({"explain", "-c", config, "--db", "-t", "task", "--where", "id = 1", "--set",
                  "dept = nextval('s')"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("cannot execute nextval() in a read-only transaction") != std::string::npos);
  CHECK(e.pg.scalar("SELECT last_value::text FROM s") == std::optional<std::string>("1"));
  CHECK(e.pg.scalar("SELECT is_called::text FROM s") == std::optional<std::string>("false"));
}

// An unchanged value stored out of line is not in the WAL's new row ('u'): with DEFAULT
// identity the daemon widens for it too. explain --db says so, and its PUBLISH lists exactly
// what the daemon's does.
TEST_CASE("explain --db: an unchanged TOAST value, compared with the daemon's message") {
  E2E e;
  e.pg.exec(
      "CREATE TABLE doc (id int PRIMARY KEY, dept int, body text);"
      "ALTER TABLE doc ALTER COLUMN body SET STORAGE EXTERNAL;"
      "INSERT INTO doc VALUES (1, 5, repeat('x', 5000)), (2, 5, 'short')");
  e.start(R"(version: 1
rules:
  - name: doc
    table: doc
    changed: [dept]
    delete: ["doc:${body|md5:8}", "dept:${dept}"]
    publish: ch
)",
          "doc");
  auto messages = e.dir.path() / "messages";
  run({"sh", "-c",
       "timeout 60 redis-cli -p " + std::to_string(e.redis.port()) + " subscribe ch > " +
           messages.string() + " 2>&1 &"});
  REQUIRE(eventually([&] {
    return e.redis.command({"PUBSUB", "NUMSUB", "ch"}) == std::optional<std::string>("ch\n1");
  }));
  auto config = (e.dir.path() / "pgbust.yaml").string();
  auto published = [&](const std::string& where) {
    std::string text;
    eventually([&] {
      std::ifstream in(messages);
      std::stringstream s;
      s << in.rdbuf();
      text = s.str();
      return text.find(where) != std::string::npos;
    });
    return text;
  };
  for (const char* id : {"1", "2"}) {
    CAPTURE(id);
    auto r = run_pgbust({"explain", "-c", config, "--db", "-t", "doc", "--where",
                         std::string("id = ") + id, "--set", "dept = dept + 1"});
    REQUIRE(r.exit_code == 0);
    bool toast = std::string(id) == "1";
    CHECK((r.out.find("# body is stored out of line (TOAST) and unchanged: the WAL does not "
                      "carry its new value\n") != std::string::npos) == toast);
    CHECK((r.out.find("new.body unknown (unchanged TOAST value not sent)") != std::string::npos) ==
          toast);
    auto at = r.out.find(",\"tables\":");
    REQUIRE(at != std::string::npos);
    std::string tail = r.out.substr(at, r.out.find('}', at) - at);
    e.pg.exec(std::string("UPDATE doc SET dept = dept + 1 WHERE id = ") + id);
    e.sync();
    INFO(r.out);
    INFO(e.logs());
    CHECK(published(tail).find(tail) != std::string::npos);
  }
}
