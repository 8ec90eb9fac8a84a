// examples/dataset-cache: the Flask + pandas historical dataset service. Its own schema,
// rules and config through the real daemon (logical source): the Redis (L2) parquet blobs
// of a table go by pattern, a second delete catches blobs stored just after the first, and
// a SUBSCRIBEd worker gets exactly one message per transaction naming the tables, which
// the example's subscriber.py turns into the right L1 drops.
#include <doctest/doctest.h>
#include <hiredis/hiredis.h>

#include <memory>

#include "example.hpp"
#include "pgbust/core/json.hpp"

using namespace pgbust::test;

namespace {

struct ContextFree {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
struct ReplyFree {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};

// A worker's subscription: a blocking hiredis connection SUBSCRIBEd to one channel. Messages
// queue in the socket until next() reads them, so the test reads them after each step.
class Subscriber {
 public:
  Subscriber(int port, const std::string& channel) {
    timeval tv{5, 0};
    ctx_.reset(redisConnectWithTimeout("127.0.0.1", port, tv));
    REQUIRE(ctx_);
    REQUIRE_MESSAGE(ctx_->err == 0, ctx_->errstr);
    std::unique_ptr<redisReply, ReplyFree> r(static_cast<redisReply*>(
        redisCommand(ctx_.get(), "SUBSCRIBE %b", channel.data(), channel.size())));
    REQUIRE(r);
    REQUIRE(r->type == REDIS_REPLY_ARRAY);
  }

  // The next message's payload, or nullopt when none arrives within `timeout` (the
  // connection is unusable after a timeout: use that only for the last read).
  std::optional<std::string> next(std::chrono::seconds timeout = 15s) {
    redisSetTimeout(ctx_.get(), timeval{static_cast<long>(timeout.count()), 0});
    void* raw = nullptr;
    if (redisGetReply(ctx_.get(), &raw) != REDIS_OK) return std::nullopt;
    std::unique_ptr<redisReply, ReplyFree> r(static_cast<redisReply*>(raw));
    REQUIRE(r->type == REDIS_REPLY_ARRAY);
    REQUIRE(r->elements == 3);
    CHECK(std::string(r->element[0]->str, r->element[0]->len) == "message");
    return std::string(r->element[2]->str, r->element[2]->len);
  }

 private:
  std::unique_ptr<redisContext, ContextFree> ctx_;
};

std::vector<std::string> strings(const pgbust::json::Value& v, const char* member) {
  std::vector<std::string> out;
  const auto* list = v.find(member);
  REQUIRE_MESSAGE(list, "no '" << member << "' in the message");
  for (const auto& item : list->items()) out.push_back(item.text());
  std::sort(out.begin(), out.end());
  return out;
}

struct DatasetCache {
  Example ex{"dataset-cache"};
  AppKeys keys{ex};
  std::vector<std::string> holds, shifts;  // the L2 keys of each facts table
  std::unique_ptr<Subscriber> worker;
  std::vector<std::string> messages;  // every message received, in order

  DatasetCache() {
    ex.check_shipped();
    ex.load_schema();
    ex.pg.exec(
        "INSERT INTO resources (id, name, area) VALUES (1, 'Press 1', 'North'), "
        "(2, 'Press 2', 'South');"
        "INSERT INTO shift_definitions VALUES ('A', '06:00', '14:00'), "
        "('B', '14:00', '22:00'), ('C', '22:00', '06:00')");
    ex.derive_config();
    ex.setup();
    ex.check_db();
    ex.start();
    worker = std::make_unique<Subscriber>(ex.redis.port(), "dataset-invalidation");
    // The query ids: SHA-256 of the query's canonical JSON, as the service computes them.
    for (const char* table : {"hold_release_history", "resource_status_by_shift"})
      for (const char* q :
           {R"({"from":"2024-03-01","resource_id":1,"to":"2024-03-31"})",
            R"({"from":"2024-01-01","to":"2024-12-31"})", R"({"area":"North","shift":"B"})"}) {
        auto id = ex.pg.scalar(std::string("SELECT encode(sha256(convert_to('") + q +
                               "', 'UTF8')), 'hex')");
        REQUIRE(id);
        (std::string(table) == "hold_release_history" ? holds : shifts)
            .push_back("dataset:" + std::string(table) + ":" + *id);
      }
    keys.all = concat(holds, shifts);
    // Look-alikes and other data: never touched.
    keys.all = concat(keys.all, {"dataset:hold_release_history_archive:abc", "session:42",
                                 "dataset:resources:lookup"});
    keys.value = std::string("PAR1\x15\x04", 6) + "parquet blob";
    keys.ttl_seconds = 900;
  }

  // The stale-set race: a request that queried the database before the commit stores its
  // blob right after pgbust's delete. The rules' second delete (redelete_after: 2s) removes
  // it. Called right after a step's sync, when its first delete is done, so only the second
  // can remove these; waiting for it also leaves nothing pending for the next step.
  void second_delete(const std::vector<std::string>& tables) {
    for (const auto& t : tables) ex.cache("dataset:" + t + ":stored-after-the-delete", "old", 900);
    for (const auto& t : tables) {
      std::string key = "dataset:" + t + ":stored-after-the-delete";
      CHECK_MESSAGE(eventually([&] { return !ex.redis.exists(key); }, 30s),
                    "no second delete removed " << key);
    }
  }

  // Reads the next message and checks it names exactly these tables and patterns.
  void expect_message(std::vector<std::string> tables, std::vector<std::string> patterns) {
    auto msg = worker->next();
    REQUIRE_MESSAGE(msg, "no message published");
    messages.push_back(*msg);
    INFO("message: " << *msg);
    auto v = pgbust::json::parse(*msg);
    std::sort(tables.begin(), tables.end());
    std::sort(patterns.begin(), patterns.end());
    CHECK(strings(v, "tables") == tables);
    CHECK(strings(v, "patterns") == patterns);
    CHECK(strings(v, "keys").empty());
    CHECK(strings(v, "revisions").empty());
    REQUIRE(v.find("source"));
    CHECK(v.find("source")->text() == "logical");
    REQUIRE(v.find("truncated"));
    CHECK(!v.find("truncated")->as_bool());
  }
};

const std::string kHolds = "public.hold_release_history",
                  kShifts = "public.resource_status_by_shift";
const std::string kHoldsPattern = "dataset:hold_release_history:*",
                  kShiftsPattern = "dataset:resource_status_by_shift:*";

}  // namespace

TEST_CASE("dataset-cache: L2 blobs by pattern, a second delete, one message per transaction") {
  DatasetCache d;
  auto& ex = d.ex;
  auto& keys = d.keys;
  INFO(ex.logs());

  // A hold is recorded: every cached dataset of that table, whatever its query.
  keys.cache();
  ex.commit(
      "INSERT INTO hold_release_history (resource_id, event, reason) "
      "VALUES (1, 'hold', 'maintenance')");
  keys.expect_gone(d.holds);
  d.expect_message({kHolds}, {kHoldsPattern});
  d.second_delete({"hold_release_history"});

  // One transaction writing both facts tables: one message naming both.
  keys.cache();
  ex.commit(
      "BEGIN; INSERT INTO hold_release_history (resource_id, event) VALUES (1, 'release');"
      "INSERT INTO resource_status_by_shift VALUES (1, '2024-03-04', 'A', 'running', 420);"
      "COMMIT");
  keys.expect_gone(concat(d.holds, d.shifts));
  d.expect_message({kHolds, kShifts}, {kHoldsPattern, kShiftsPattern});
  d.second_delete({"hold_release_history", "resource_status_by_shift"});

  // A transaction that rolls back, and one on tables without rules: no message, nothing gone
  // (the next message read is the next step's).
  keys.cache();
  ex.commit("BEGIN; DELETE FROM hold_release_history; ROLLBACK");
  ex.commit("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)");
  keys.expect_gone({});

  // A resource renamed: both datasets join resources.
  ex.commit("UPDATE resources SET name = 'Press 1A' WHERE id = 1");
  keys.expect_gone(concat(d.holds, d.shifts));
  d.expect_message({"public.resources"}, {kHoldsPattern, kShiftsPattern});
  d.second_delete({"hold_release_history", "resource_status_by_shift"});

  // Shift times live only in each worker's L1: nothing in Redis, just the message.
  keys.cache();
  ex.commit("UPDATE shift_definitions SET starts_at = '05:30' WHERE code = 'A'");
  keys.expect_gone({});
  d.expect_message({"public.shift_definitions"}, {});

  // An import of 1000 events in one statement, then the nightly aggregation: one message
  // per transaction, not per row.
  keys.cache();
  ex.commit(
      "INSERT INTO hold_release_history (resource_id, event, at) SELECT 1 + g % 2, "
      "CASE WHEN g % 2 = 0 THEN 'hold' ELSE 'release' END, "
      "'2024-03-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 1000) g");
  ex.commit(
      "INSERT INTO resource_status_by_shift SELECT r, '2024-03-05', s, 'running', 400 "
      "FROM generate_series(1, 2) r, unnest(ARRAY['A', 'B', 'C']) s "
      "ON CONFLICT (resource_id, shift_date, shift, status) DO UPDATE SET minutes = "
      "excluded.minutes");
  keys.expect_gone(concat(d.holds, d.shifts));
  d.expect_message({kHolds}, {kHoldsPattern});
  d.expect_message({kShifts}, {kShiftsPattern});
  d.second_delete({"hold_release_history", "resource_status_by_shift"});

  // TRUNCATE before a re-aggregation: no row values needed, the same pattern.
  keys.cache();
  ex.commit("TRUNCATE resource_status_by_shift");
  keys.expect_gone(d.shifts);
  d.expect_message({kShifts}, {kShiftsPattern});
  d.second_delete({"resource_status_by_shift"});

  // The second delete publishes nothing more.
  CHECK(!d.worker->next(2s));

  // The stream holds the same messages, one entry each, in commit order (`stream:`), for
  // workers that resume from their last ID (subscriber.py follow_stream_forever).
  auto flat = ex.redis.command({"XRANGE", "dataset-invalidation", "-", "+"}).value_or("");
  std::vector<std::string> lines, streamed;
  for (std::size_t at = 0; at <= flat.size();) {
    auto nl = std::min(flat.find('\n', at), flat.size());
    lines.push_back(flat.substr(at, nl - at));
    at = nl + 1;
  }
  for (std::size_t i = 0; i + 2 < lines.size(); i += 3) {
    CHECK(lines[i + 1] == "message");
    streamed.push_back(lines[i + 2]);
  }
  CHECK(streamed == d.messages);

  // The example's subscriber.py (the L1 side, without redis-py) applied to the real
  // messages drops exactly the entries of the tables they name.
  auto python = run({"python3", "-c", "import json"});
  if (python.exit_code != 0) {
    MESSAGE("python3 not available: subscriber.py not exercised");
    return;
  }
  std::string input = "message\ndataset-invalidation\n" + d.messages.at(0) + "\n" +
                      d.messages.at(3) + "\n" + d.messages.at(2) + "\n";
  auto r = run({"python3", (ex.dir / "subscriber.py").string(), "--stdin"}, input);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output ==
        "hold_release_history: dropped 2; left: q-shifts-1 q-shifts-2 shift-calendar\n"
        "shift_definitions: dropped 1; left: q-shifts-1 q-shifts-2\n"
        "resources: dropped 2; left: -\n");
}
