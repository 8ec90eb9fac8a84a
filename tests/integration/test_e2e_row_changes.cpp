// End to end through the real daemon: each operation invalidates exactly the right keys,
// only after commit, with moves, widening, TOAST and glob characters in values.
#include <doctest/doctest.h>

#include "e2e.hpp"
#include "pgbust/pg/libpq.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(version: 1
rules:
  - name: task-keys
    table: public.tasks
    delete: ["task:${id}", "group:${group_id}"]
    delete_pattern: ["search:${owner}:*"]
    bump: ["rev:group:${group_id}"]
  - name: dtask-keys
    table: public.dtasks
    delete: ["dtask:${id}", "dgroup:${group_id}"]
  - name: note-keys
    table: notes
    delete: ["note:${id}"]
  - name: doc-keys
    table: docs
    delete: ["doc:${id}:${body|md5:8}"]
)";

struct Fixture {
  E2E env;
  Fixture() {
    env.pg.exec(R"(
      CREATE TABLE tasks (id int PRIMARY KEY, group_id int, owner text, status text);
      ALTER TABLE tasks REPLICA IDENTITY FULL;
      CREATE TABLE dtasks (id int PRIMARY KEY, group_id int, owner text);
      CREATE TABLE notes (id int PRIMARY KEY, body text);
      CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
      ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
      CREATE TABLE unrelated (id int);
    )");
    env.start(kRules, "tasks, dtasks, notes, docs");
  }
};

bool gone(const E2E& e, const std::string& key) {
  return !e.redis.exists(key);
}

}  // namespace

TEST_CASE("insert, update and delete invalidate exactly the right keys") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  e.set_keys({"task:1", "group:7", "search:alice:1", "search:alice:2", "task:2", "group:8",
              "search:bob:1", "search:alic:1", "search:alice"});

  e.pg.exec("INSERT INTO tasks VALUES (1, 7, 'alice', 'open')");
  e.sync();
  CHECK(gone(e, "task:1"));
  CHECK(gone(e, "group:7"));
  CHECK(gone(e, "search:alice:1"));
  CHECK(gone(e, "search:alice:2"));
  // Nothing extra.
  CHECK(e.redis.exists("task:2"));
  CHECK(e.redis.exists("group:8"));
  CHECK(e.redis.exists("search:bob:1"));
  CHECK(e.redis.exists("search:alic:1"));
  CHECK(e.redis.exists("search:alice"));
  // The revision counter is seeded far above anything an evicted counter could have held.
  auto rev = e.redis.command({"GET", "rev:group:7"});
  REQUIRE(rev);
  CHECK(std::stoll(*rev) > 1'000'000'000LL);

  SUBCASE("a move between groups (REPLICA IDENTITY FULL) invalidates both groups") {
    e.set_keys({"group:7", "group:8", "group:9", "task:1"});
    e.pg.exec("UPDATE tasks SET group_id = 8 WHERE id = 1");
    e.sync();
    CHECK(gone(e, "group:7"));
    CHECK(gone(e, "group:8"));
    CHECK(gone(e, "task:1"));
    CHECK(e.redis.exists("group:9"));
  }
  SUBCASE("delete uses the old row") {
    e.set_keys({"task:1", "group:7", "group:9"});
    e.pg.exec("DELETE FROM tasks WHERE id = 1");
    e.sync();
    CHECK(gone(e, "task:1"));
    CHECK(gone(e, "group:7"));
    CHECK(e.redis.exists("group:9"));
  }
  SUBCASE("truncate widens to every key the rule could name") {
    e.set_keys({"task:1", "task:99", "group:7", "search:zed:1", "note:1"});
    e.pg.exec("TRUNCATE tasks");
    e.sync();
    CHECK(gone(e, "task:1"));
    CHECK(gone(e, "task:99"));
    CHECK(gone(e, "group:7"));
    CHECK(gone(e, "search:zed:1"));
    CHECK(e.redis.exists("note:1"));
  }
}

TEST_CASE("REPLICA IDENTITY DEFAULT: a move widens the unknown old group") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  e.pg.exec("INSERT INTO dtasks VALUES (1, 7, 'alice')");
  e.sync();
  e.set_keys({"dtask:1", "dtask:2", "dgroup:7", "dgroup:8", "dgroup:99", "other:1"});
  e.pg.exec("UPDATE dtasks SET group_id = 8 WHERE id = 1");
  e.sync();
  CHECK(gone(e, "dtask:1"));
  CHECK(gone(e, "dgroup:8"));
  CHECK(gone(e, "dgroup:7"));   // old group unknown: dgroup:* was deleted
  CHECK(gone(e, "dgroup:99"));  // ... which is the widening
  CHECK(e.redis.exists("dtask:2"));
  CHECK(e.redis.exists("other:1"));
}

TEST_CASE("multi-row, multi-table transactions and rollbacks") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  e.set_keys({"task:1", "task:2", "task:3", "note:1", "note:2", "task:50", "group:50"});
  e.pg.exec(
      "BEGIN; INSERT INTO tasks VALUES (1, 1, 'a', 'x'), (2, 1, 'b', 'x');"
      "INSERT INTO notes VALUES (1, 'n'); UPDATE tasks SET status = 'y' WHERE id = 2;"
      "COMMIT;");
  e.pg.exec("BEGIN; INSERT INTO tasks VALUES (50, 50, 'r', 'x'); ROLLBACK;");
  e.sync();
  CHECK(gone(e, "task:1"));
  CHECK(gone(e, "task:2"));
  CHECK(gone(e, "note:1"));
  CHECK(e.redis.exists("task:3"));
  CHECK(e.redis.exists("note:2"));
  CHECK(e.redis.exists("task:50"));  // rolled back: nothing happened
  CHECK(e.redis.exists("group:50"));
}

TEST_CASE("nothing is invalidated before commit") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  e.set_keys({"task:5", "group:5"});
  auto conn = pgbust::pg::connect(e.pg.conninfo());
  pgbust::pg::exec(conn.get(), "BEGIN", "begin");
  pgbust::pg::exec(conn.get(), "INSERT INTO tasks VALUES (5, 5, 'o', 'open')", "insert");
  e.sync();  // later commits are applied, the open transaction is not
  CHECK(e.redis.exists("task:5"));
  CHECK(e.redis.exists("group:5"));
  pgbust::pg::exec(conn.get(), "COMMIT", "commit");
  e.sync();
  CHECK(gone(e, "task:5"));
  CHECK(gone(e, "group:5"));
}

TEST_CASE("glob characters in row values never widen a pattern delete") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  e.set_keys({"search:a*b[:1", "search:axb[:1", "search:a*b]:1", "search:ab:1"});
  e.pg.exec("INSERT INTO tasks VALUES (9, 9, 'a*b[', 'x')");
  e.sync();
  CHECK(gone(e, "search:a*b[:1"));
  CHECK(e.redis.exists("search:axb[:1"));
  CHECK(e.redis.exists("search:a*b]:1"));
  CHECK(e.redis.exists("search:ab:1"));
}

TEST_CASE("an unchanged TOASTed value widens only that placeholder") {
  Fixture f;
  auto& e = f.env;
  INFO(e.logs());
  // ~40 kB that does not compress: stored out of line, and not re-sent when unchanged.
  e.pg.exec(
      "INSERT INTO docs SELECT 1, 't', string_agg(md5(i::text), '') "
      "FROM generate_series(1, 1300) i");
  e.sync();
  auto digest = e.pg.scalar("SELECT left(md5(body), 8) FROM docs WHERE id = 1");
  REQUIRE(digest);
  e.set_keys({"doc:1:" + *digest, "doc:1:zzzzzzzz", "doc:2:" + *digest});
  e.pg.exec("UPDATE docs SET title = 'u' WHERE id = 1");
  e.sync();
  CHECK(gone(e, "doc:1:" + *digest));
  CHECK(gone(e, "doc:1:zzzzzzzz"));           // doc:1:* — the body part was unknown
  CHECK(e.redis.exists("doc:2:" + *digest));  // the id part was known
}
