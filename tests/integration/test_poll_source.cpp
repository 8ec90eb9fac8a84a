// The poll source against a real PostgreSQL: inserts and updates found by id, by updated_at
// and by both; equal timestamps in two commits; a long transaction committing late; deletes;
// the watermark persisted on confirm, resumed on restart, and a corrupt state file.
#include <doctest/doctest.h>

#include <fstream>

#include "pgbust/core/text.hpp"
#include "pgbust/pg/libpq.hpp"
#include "pgbust/pipeline/pipeline.hpp"
#include "pgbust/redis/redis.hpp"
#include "pgbust/sources/poll.hpp"
#include "pgbust/sources/poll_state.hpp"
#include "source_support.hpp"

using namespace pgbust;
using namespace pgbust::test_sources;
using namespace std::chrono_literals;
using Lines = std::vector<std::string>;

namespace {

const char* kRules = R"(
version: 1
rules:
  - name: act
    table: act
    delete: ["act:${id}", "group_acts:${group_id}"]
  - name: tasks
    table: tasks
    delete: ["task:${id}", "group_tasks:${group_id}"]
  - name: notes
    table: notes
    delete: ["note:${id}"]
)";

config::PollTable table(const std::string& name, std::vector<std::string> watermark,
                        std::chrono::milliseconds overlap) {
  config::PollTable t;
  t.table = name;
  t.watermark = std::move(watermark);
  t.overlap = overlap;
  return t;
}

struct Fixture {
  test::Postgres pg;
  test::TempDir dir;
  std::shared_ptr<const rules::RuleSet> rules = load_rules(kRules);
  Loop loop;
  RecordingSink sink;
  std::unique_ptr<PollSource> src;

  Fixture() {
    // Rows from before pgbust starts; only the latest task and note are within the overlap
    // window of the starting maximum.
    pg.exec(
        "CREATE TABLE act (id bigserial PRIMARY KEY, group_id int, name text);"
        "CREATE TABLE tasks (id int PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(), "
        "  group_id int, status text);"
        "CREATE TABLE notes (id int PRIMARY KEY, updated_at timestamp, body text);"
        "INSERT INTO act (group_id, name) VALUES (1, 'old1'), (1, 'old2');"
        "INSERT INTO tasks VALUES (1, now() - interval '1 hour', 1, 'open'),"
        "  (2, now() - interval '1 hour', 1, 'open'), (3, now() - interval '1 hour', 1, 'open'),"
        "  (4, now() - interval '30 minutes', 1, 'open');"
        "INSERT INTO notes VALUES (1, localtimestamp - interval '1 hour', 'x')");
  }
  ~Fixture() { stop(); }

  PollOptions options() const {
    PollOptions o;
    o.conninfo = pg.conninfo();
    o.poll.interval = 100ms;
    o.poll.state_dir = (dir.path() / "state").string();
    o.poll.page_size = 2;  // several pages per round
    o.poll.tables = {table("act", {"id"}, 0ms), table("tasks", {"updated_at", "id"}, 5s),
                     table("notes", {"updated_at"}, 5s)};
    o.backoff_min = 50ms;
    o.backoff_max = 200ms;
    return o;
  }

  void start(PollOptions o) {
    src = std::make_unique<PollSource>(std::move(o), *rules, sink);
    loop.add(src.get());
    REQUIRE(drive(loop, [&] { return src->status().state == SourceState::Streaming; }));
    REQUIRE(round());
  }
  void start() { start(options()); }
  void stop() {
    if (!src) return;
    loop.remove(src.get());
    src->close();
    src.reset();
  }
  // Waits for a complete round that began after now.
  bool round() {
    auto n = src->counters().rounds;
    return drive(loop, [&] { return src->counters().rounds >= n + 2; });
  }
  bool wait(const std::string& line) {
    return drive(loop, [&] { return sink.has(line); });
  }
  std::filesystem::path state_file(const std::string& t) const {
    return dir.path() / "state" / poll::state_file_name("public", t);
  }
};

}  // namespace

TEST_CASE("first start: from the current maximum, every rule table widens once, state written") {
  Fixture f;
  f.start();
  CHECK(f.src->counters().start_widenings == 3);
  CHECK(f.sink.count("widen public.act polled") == 1);
  CHECK(f.sink.count("widen public.tasks polled") == 1);
  CHECK(f.sink.count("widen public.notes polled") == 1);
  CHECK(f.sink.matching("insert").empty());  // rows from before the start are not replayed
  // ... except that the overlap window re-reads what changed just before the maximum (a
  // transaction committing late would be there): the latest task and note, once each.
  auto tasks_updates = f.sink.matching("update public.tasks");
  REQUIRE(tasks_updates.size() == 1);
  CHECK(tasks_updates[0].find("new{group_id=1,id=4,") != std::string::npos);
  CHECK(f.sink.matching("update public.notes").size() == 1);
  auto act = poll::load(f.state_file("act"));
  REQUIRE(act.status == poll::Loaded::Status::Ok);
  CHECK(act.watermark.cursor == std::vector<std::string>{"2"});
  CHECK(act.watermark.count == 2);
  auto tasks = poll::load(f.state_file("tasks"));
  REQUIRE(tasks.status == poll::Loaded::Status::Ok);
  CHECK(tasks.watermark.max_id == "4");
  CHECK(tasks.watermark.cursor.size() == 2);
  CHECK(f.src->status().position.find("public.act id=2") != std::string::npos);
}

TEST_CASE("inserts by id, paged; an insert's old image is absent") {
  Fixture f;
  f.start();
  f.pg.exec(
      "INSERT INTO act (group_id, name) VALUES (5, 'a'), (6, 'b'), (7, 'c'), (NULL, 'd'), (8, "
      "'e')");
  REQUIRE(f.wait("insert public.act new{group_id=8,id=7}"));
  CHECK(f.sink.matching("public.act new") ==
        Lines{"insert public.act new{group_id=5,id=3}", "insert public.act new{group_id=6,id=4}",
              "insert public.act new{group_id=7,id=5}", "insert public.act new{group_id=NULL,id=6}",
              "insert public.act new{group_id=8,id=7}"});
  REQUIRE(f.round());
  CHECK(f.sink.matching("public.act new").size() == 5);  // not repeated
  CHECK(f.src->counters().inserts == 5);
}

// Regression: pages were sorted by the columns' text ("10" < "9") while the keyset condition
// compared typed values, so rows between the two orders were skipped for good.
TEST_CASE("paging follows the typed order: ids of different digit counts are all read") {
  Fixture f;
  f.start();
  f.pg.exec("INSERT INTO act (group_id, name) SELECT g, 'bulk' FROM generate_series(3, 22) g");
  REQUIRE(f.wait("insert public.act new{group_id=22,id=22}"));
  REQUIRE(f.round());
  std::vector<std::string> missing;
  for (int id = 3; id <= 22; ++id) {
    auto line =
        "insert public.act new{group_id=" + std::to_string(id) + ",id=" + std::to_string(id) + "}";
    if (f.sink.count(line) != 1) missing.push_back(std::to_string(id));
  }
  CHECK(join(missing, ",") == "");
}

TEST_CASE("paging follows the typed order: one UPDATE over many rows with equal times") {
  Fixture f;
  f.start();
  f.pg.exec(
      "INSERT INTO tasks (id, updated_at, group_id, status) "
      "SELECT g, now() - interval '10 minutes', g, 'open' FROM generate_series(5, 30) g");
  REQUIRE(f.round());
  REQUIRE(f.round());
  // One statement: every row gets the same updated_at, so only the id orders the pages.
  f.pg.exec("UPDATE tasks SET group_id = group_id + 1000, updated_at = now()");
  REQUIRE(drive(f.loop, [&] { return !f.sink.matching("new{group_id=100").empty(); }));
  REQUIRE(f.round());
  REQUIRE(f.round());
  std::vector<std::string> missing;
  for (int id = 1; id <= 30; ++id) {
    auto group = std::to_string(id <= 4 ? 1001 : id + 1000);
    auto part = "new{group_id=" + group + ",id=" + std::to_string(id) + ",";
    if (f.sink.matching(part).empty()) missing.push_back(std::to_string(id));
  }
  CHECK(join(missing, ",") == "");
}

TEST_CASE("the starting maximum is the typed maximum, not the text one") {
  Fixture f;
  f.pg.exec("INSERT INTO act (group_id, name) SELECT g, 'before' FROM generate_series(3, 12) g");
  auto o = f.options();
  o.poll.tables = {table("act", {"id"}, 0ms)};
  f.start(o);
  // As text, "9" > "12": the source would start at 9 and replay 10..12 as inserts.
  CHECK(f.src->status().position.find("public.act id=12") != std::string::npos);
  CHECK(f.sink.matching("insert").empty());
}

TEST_CASE("[updated_at, id]: inserts above the last id, updates with only the key known") {
  Fixture f;
  f.start();
  f.pg.exec("INSERT INTO tasks (id, group_id, status) VALUES (10, 2, 'new')");
  const std::string insert = "insert public.tasks new{group_id=2,id=10,updated_at=";
  REQUIRE(drive(f.loop, [&] { return !f.sink.matching(insert).empty(); }));
  f.pg.exec("UPDATE tasks SET group_id = 9, updated_at = now() WHERE id = 1");
  // Old row: the key as now, everything else unknown (rules widen for old.group_id).
  const std::string update =
      "update public.tasks old{group_id=?polled,id=1,updated_at=?polled} "
      "new{group_id=9,id=1,updated_at=";
  REQUIRE(drive(f.loop, [&] { return !f.sink.matching(update).empty(); }));
  REQUIRE(f.round());
  CHECK(f.sink.matching(insert).size() == 1);  // the overlap window re-reads them: no repeats
  CHECK(f.sink.matching(update).size() == 1);
  CHECK(f.src->counters().repeats >= 2);
}

TEST_CASE("[updated_at] alone: every change is an update, ordered by the primary key") {
  Fixture f;
  f.start();
  f.pg.exec("UPDATE notes SET body = 'y', updated_at = localtimestamp WHERE id = 1");
  f.pg.exec("INSERT INTO notes VALUES (2, localtimestamp, 'z')");
  // The first round re-read note 1 (in the window of the starting maximum); then both changes.
  REQUIRE(drive(f.loop, [&] { return f.sink.matching("public.notes old").size() == 3; }));
  auto lines = f.sink.matching("public.notes old");
  CHECK(lines[1].rfind("update public.notes old{id=1,updated_at=?polled} new{id=1,updated_at=",
                       0) == 0);
  CHECK(lines[2].rfind("update public.notes old{id=2,updated_at=?polled} new{id=2,updated_at=",
                       0) == 0);
  CHECK(lines[1] != lines[0]);  // a new updated_at
}

TEST_CASE(
    "equal timestamps in two commits: the second is found by the overlap, the first not repeated") {
  Fixture f;
  f.start();
  std::string t = *f.pg.scalar("SELECT now()::text");
  f.pg.exec("UPDATE tasks SET updated_at = '" + t + "', group_id = 101 WHERE id = 4");
  REQUIRE(drive(f.loop, [&] { return !f.sink.matching("new{group_id=101,").empty(); }));
  REQUIRE(f.round());
  // Same updated_at, lower id: below the cursor (t, 4), committed after it was passed.
  f.pg.exec("UPDATE tasks SET updated_at = '" + t + "', group_id = 102 WHERE id = 2");
  REQUIRE(drive(f.loop, [&] { return !f.sink.matching("new{group_id=102,").empty(); }));
  REQUIRE(f.round());
  CHECK(f.sink.matching("new{group_id=101,").size() == 1);
  CHECK(f.sink.matching("new{group_id=102,").size() == 1);
}

TEST_CASE("a long transaction committing after a later one is caught by the overlap window") {
  Fixture f;
  f.start();
  pg::Conn slow = pg::connect(f.pg.conninfo());
  pg::exec(slow.get(), "BEGIN", "begin");
  // now() is the transaction's start: older than what the next commit writes.
  pg::exec(slow.get(), "UPDATE tasks SET updated_at = now(), group_id = 201 WHERE id = 3",
           "update");
  f.pg.exec("SELECT pg_sleep(0.2)");
  f.pg.exec("UPDATE tasks SET updated_at = now(), group_id = 202 WHERE id = 1");
  REQUIRE(drive(f.loop, [&] { return !f.sink.matching("new{group_id=202,").empty(); }));
  REQUIRE(f.round());
  CHECK(f.sink.matching("new{group_id=201,").empty());  // not committed yet: not visible
  pg::exec(slow.get(), "COMMIT", "commit");
  REQUIRE(drive(f.loop, [&] { return !f.sink.matching("new{group_id=201,").empty(); }));
  CHECK(f.sink.matching("new{group_id=201,").size() == 1);
}

TEST_CASE("deletes: a fall in the row count widens every rule of the table") {
  Fixture f;
  f.start();
  f.pg.exec("DELETE FROM act WHERE id = 1");
  REQUIRE(drive(f.loop, [&] { return f.sink.count("widen public.act polled") == 2; }));
  CHECK(f.src->counters().deletes == 1);
  // A delete and an insert in the same interval: the count stays, the insert reveals it.
  f.sink.accept = false;  // hold the rounds so both land between two counts
  drive_for(f.loop, 300ms);
  f.pg.exec("DELETE FROM act WHERE id = 2; INSERT INTO act (group_id, name) VALUES (3, 'n')");
  f.sink.accept = true;
  REQUIRE(drive(f.loop, [&] { return f.sink.count("widen public.act polled") == 3; }));
  CHECK(f.sink.has("insert public.act new{group_id=3,id=3}"));
  REQUIRE(f.round());
  CHECK(f.sink.count("widen public.act polled") == 3);  // not again without a new delete
}

TEST_CASE("the watermark is persisted only once confirmed, and a restart resumes from it") {
  Fixture f;
  f.start();
  f.sink.auto_confirm = false;
  f.pg.exec("INSERT INTO act (group_id, name) VALUES (4, 'unconfirmed')");
  REQUIRE(f.wait("insert public.act new{group_id=4,id=3}"));
  REQUIRE(f.round());
  CHECK(poll::load(f.state_file("act")).watermark.cursor == std::vector<std::string>{"2"});
  f.src->confirm(f.sink.txns.back().position);
  CHECK(poll::load(f.state_file("act")).watermark.cursor == std::vector<std::string>{"3"});

  // Down: rows change meanwhile; up again: no first-start widening, only what changed.
  f.stop();
  f.sink.txns.clear();
  f.sink.auto_confirm = true;
  f.pg.exec("INSERT INTO act (group_id, name) VALUES (5, 'while down')");
  f.pg.exec("UPDATE tasks SET updated_at = now(), group_id = 6 WHERE id = 2");
  f.start();
  REQUIRE(f.wait("insert public.act new{group_id=5,id=4}"));
  REQUIRE(drive(f.loop, [&] { return !f.sink.matching("new{group_id=6,id=2").empty(); }));
  CHECK(f.src->counters().start_widenings == 0);
  CHECK(f.sink.matching("widen").empty());
  CHECK(f.sink.matching("public.act").size() == 1);  // id 3 was confirmed: not replayed
}

TEST_CASE("a corrupt state file: a clear error naming it, then the safe choice") {
  Fixture f;
  std::filesystem::create_directories(f.dir.path() / "state");
  std::ofstream(f.state_file("act")) << "{\"version\": 1, \"table\": \"public.act\", \"watermark";
  std::ofstream(f.state_file("tasks")) << poll::serialize(poll::Watermark{
      "public.tasks", {"id"}, {"1"}, {}, std::nullopt, std::nullopt, std::nullopt});  // other
                                                                                      // columns
  f.start();
  auto st = f.src->status();
  CHECK(st.errors >= 2);
  CHECK(st.state == SourceState::Streaming);
  // Both unusable files widen their table once and start from the current maximum.
  CHECK(f.src->counters().start_widenings == 3);
  CHECK(f.sink.count("widen public.act polled") == 1);
  CHECK(f.sink.matching("insert").empty());
  // The good state replaced the corrupt one once confirmed.
  CHECK(poll::load(f.state_file("act")).status == poll::Loaded::Status::Ok);
  f.pg.exec("INSERT INTO act (group_id, name) VALUES (9, 'after')");
  REQUIRE(f.wait("insert public.act new{group_id=9,id=3}"));
}

TEST_CASE("a corrupt state file's error says which file and what was expected") {
  Fixture f;
  std::filesystem::create_directories(f.dir.path() / "state");
  std::ofstream(f.state_file("act")) << "garbage";
  auto o = f.options();
  o.poll.tables = {table("act", {"id"}, 0ms)};
  f.start(o);
  auto err = f.src->status().last_error;
  CHECK(err.find(f.state_file("act").string()) != std::string::npos);
  CHECK(err.find("not JSON") != std::string::npos);
  CHECK(err.find("expected a JSON object") != std::string::npos);
}

TEST_CASE(
    "configuration problems found in the database keep the source backing off, with the reason") {
  Fixture f;
  auto o = f.options();
  o.poll.tables = {table("missing_table", {"id"}, 0ms)};
  PollSource src(o, *f.rules, f.sink);
  f.loop.add(&src);
  REQUIRE(drive(f.loop, [&] { return src.status().state == SourceState::BackingOff; }));
  CHECK(src.status().last_error.find(
            "table public.missing_table does not exist (sources.poll.tables)") !=
        std::string::npos);
  f.loop.remove(&src);
}

TEST_CASE("end to end: polled changes reach Redis; a delete widens to patterns") {
  Fixture f;
  RedisPath to_redis(f.loop, f.rules);
  test::Redis& redis = to_redis.redis;
  redis::Target& target = to_redis.target;
  Pipeline& pipeline = to_redis.pipeline;
  PollSource src(f.options(), *f.rules, pipeline);
  f.loop.add(&src);
  REQUIRE(drive(f.loop, [&] { return src.counters().rounds >= 1 && pipeline.idle(); }));
  for (auto k : {"act:3", "group_acts:4", "task:1", "group_tasks:1", "group_tasks:5", "note:1"})
    redis.set(k, "cached");
  f.pg.exec("INSERT INTO act (group_id, name) VALUES (4, 'x')");
  f.pg.exec("UPDATE tasks SET group_id = 5, updated_at = now() WHERE id = 1");
  // Keys first, then the patterns of the same batch: wait for the whole batch.
  REQUIRE(drive(f.loop, [&] {
    return !redis.exists("act:3") && !redis.exists("group_tasks:5") && pipeline.idle();
  }));
  CHECK_FALSE(redis.exists("group_acts:4"));
  CHECK_FALSE(redis.exists("task:1"));
  CHECK_FALSE(redis.exists("group_tasks:1"));  // the old group is unknown: widened to a pattern
  CHECK(redis.exists("note:1"));
  f.pg.exec("DELETE FROM notes WHERE id = 1");
  REQUIRE(drive(f.loop, [&] { return !redis.exists("note:1"); }));
  f.loop.remove(&src);
  src.close();
  target.close();
}

// Regression: a watermark that could not be saved left the source (and /healthz) healthy.
TEST_CASE("a watermark that cannot be saved keeps the source degraded until it can") {
  Fixture f;
  f.dir.write("blocked", "a file where the state directory should be");
  auto o = f.options();
  o.poll.state_dir = (f.dir.path() / "blocked").string();
  o.poll.tables = {table("act", {"id"}, 0ms)};
  f.start(o);
  f.pg.exec("INSERT INTO act (group_id, name) VALUES (4, 'x')");
  REQUIRE(f.wait("insert public.act new{group_id=4,id=3}"));
  REQUIRE(f.round());
  auto st = f.src->status();
  CHECK(st.state == SourceState::Streaming);
  CHECK(st.degraded.find("cannot save the watermark") != std::string::npos);
  CHECK(st.degraded.find("blocked") != std::string::npos);
}
