// Pipeline without Redis or PostgreSQL: a fake Source commits transactions, a fake Applier
// holds batches until the test completes them; checks what each batch carries and that each
// source is confirmed in order, only after the work of every earlier transaction is applied.
#include "pgbust/pipeline/pipeline.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pgbust/pipeline/publish.hpp"
#include "pipeline_fakes.hpp"
#include "test_rules_support.hpp"

using namespace pgbust;
using pgbust::test_pipeline::FakeApplier;
using pgbust::test_pipeline::FakeSource;
using pgbust::test_rules::Fixture;
using pgbust::test_rules::load_rules;
using pgbust::test_rules::val;
using Keys = std::vector<std::string>;

TEST_CASE("publish_message: the exact JSON of a PUBLISH") {
  PublishContent c;
  c.tables = {"public.t", "app.\"odd\""};
  c.keys = {"k:1", "quote\"back\\slash"};
  c.patterns = {"p:*"};
  c.revisions = {"rev:\n"};
  CHECK(publish_message("logical", "0/16B3748", c) ==
        "{\"source\":\"logical\",\"position\":\"0/16B3748\",\"tables\":[\"app.\\\"odd\\\"\","
        "\"public.t\"],\"keys\":[\"k:1\",\"quote\\\"back\\\\slash\"],\"patterns\":[\"p:*\"],"
        "\"revisions\":[\"rev:\\n\"],\"truncated\":false}");
  c = PublishContent{};
  c.truncated = true;
  CHECK(publish_message("poll", "", c) ==
        "{\"source\":\"poll\",\"position\":\"\",\"tables\":[],\"keys\":[],\"patterns\":[],"
        "\"revisions\":[],\"truncated\":true}");
  c.truncated = false;
  c.gap = true;  // subscribers holding copies drop everything the rule covers
  CHECK(publish_message("logical", "0/1", c) ==
        "{\"source\":\"logical\",\"position\":\"0/1\",\"tables\":[],\"keys\":[],\"patterns\":[],"
        "\"revisions\":[],\"truncated\":false,\"gap\":true}");
}

namespace {

// A Pipeline over table public.t (id, g), a fake applier and two fake sources.
struct Rig {
  explicit Rig(const std::string& rules_yaml, PipelineOptions o = {})
      : table("public", "t", {"id", "g"}, {"id"}),
        pipeline(load_rules(rules_yaml), {}, applier, o) {}

  // One transaction of `src` inserting rows with these ids, committed at `position`.
  void txn(Source& src, Position position, const std::vector<std::string>& ids) {
    pipeline.begin(src);
    for (const auto& id : ids) insert(src, id);
    pipeline.commit(src, position, 0);
  }
  void insert(Source& src, const std::string& id) {
    ChangeEvent ev;
    ev.op = Op::Insert;
    ev.table = &table.table;
    ev.new_row = table.row({{"id", val(id)}, {"g", val("g" + id)}});
    pipeline.change(src, ev);
  }
  const Batch& batch(std::size_t i) {
    REQUIRE(i < applier.handed.size());
    return applier.handed[i].batch;
  }

  Fixture table;
  FakeApplier applier;
  FakeSource a{"A"}, b{"B"};
  Pipeline pipeline;
};

const char* kDelete = R"(
version: 1
rules:
  - name: k
    table: t
    delete: "k:${id}"
)";

}  // namespace

TEST_CASE("Pipeline: confirms only after the applier applied the batch, in commit order") {
  Rig r(kDelete);
  r.txn(r.a, 1, {"1"});
  REQUIRE(r.applier.handed.size() == 1);  // nothing in the target: sent at once
  CHECK(r.batch(0).deletes == Keys{"k:1"});
  r.txn(r.a, 2, {"2", "3"});  // accumulates behind the batch in the target
  r.txn(r.a, 3, {});          // nothing to apply, waits behind both
  CHECK(r.applier.handed.size() == 1);
  CHECK(r.a.confirmed.empty());
  CHECK(r.pipeline.in_flight() == 3);
  CHECK_FALSE(r.pipeline.idle());
  r.applier.complete(0);
  CHECK(r.a.confirmed == std::vector<Position>{1});
  REQUIRE(r.applier.handed.size() == 2);  // the accumulated batch follows
  CHECK(r.batch(1).deletes == Keys{"k:2", "k:3"});
  r.applier.complete(1);
  CHECK(r.a.confirmed == std::vector<Position>{1, 3});
  CHECK(r.pipeline.idle());
  CHECK(r.pipeline.stats().applied_transactions == 3);
  CHECK(r.pipeline.stats().transactions == 3);
}

TEST_CASE("Pipeline: a later batch completing first confirms nothing past the earlier one") {
  PipelineOptions o;
  o.max_batch_keys = 1;  // every transaction is its own batch
  Rig r(kDelete, o);
  r.txn(r.a, 1, {"1"});
  r.txn(r.a, 2, {"2"});
  r.txn(r.a, 3, {"3"});
  REQUIRE(r.applier.handed.size() == 3);
  r.applier.complete(2);
  r.applier.complete(1);
  CHECK(r.a.confirmed.empty());
  r.applier.complete(0);
  CHECK(r.a.confirmed == std::vector<Position>{3});
}

TEST_CASE("Pipeline: sources confirm independently; aborted work is dropped") {
  Rig r(kDelete);
  r.txn(r.a, 10, {"1"});
  r.txn(r.b, 20, {});  // B has nothing pending: confirmed at once
  CHECK(r.b.confirmed == std::vector<Position>{20});
  // B starts a transaction, loses its connection, then commits a different one.
  r.pipeline.begin(r.b);
  r.insert(r.b, "99");
  r.pipeline.abort(r.b);
  r.txn(r.b, 21, {"5"});
  CHECK(r.a.confirmed.empty());
  r.applier.complete(0);
  CHECK(r.a.confirmed == std::vector<Position>{10});
  REQUIRE(r.applier.handed.size() == 2);
  CHECK(r.batch(1).deletes == Keys{"k:5"});  // not k:99
  r.applier.complete(1);
  CHECK(r.b.confirmed == std::vector<Position>{20, 21});
  CHECK(r.pipeline.idle());
}

TEST_CASE("Pipeline: back-pressure once max_queued_batches are in the applier") {
  PipelineOptions o;
  o.max_batch_keys = 1;
  o.max_queued_batches = 2;
  Rig r(kDelete, o);
  r.txn(r.a, 1, {"1"});
  CHECK(r.pipeline.accepting());
  r.txn(r.a, 2, {"2"});
  CHECK_FALSE(r.pipeline.accepting());
  r.applier.complete(0);
  CHECK(r.pipeline.accepting());
}

TEST_CASE("Pipeline: batches waiting for keyspace passes do not stop the sources early") {
  // Issue 14: pattern batches wait for a pass (seconds over a large keyspace) while later
  // batches go on; counted with the others, 4 of them stopped reading the WAL for as long.
  PipelineOptions o;
  o.max_batch_keys = 1;
  o.max_queued_batches = 2;
  Rig r(R"(
version: 1
rules:
  - name: p
    table: t
    delete_pattern: "p:${id}:*"
)",
        o);
  for (int i = 1; i <= 31; ++i) r.txn(r.a, static_cast<Position>(i), {std::to_string(i)});
  CHECK(r.applier.handed.size() == 31);
  CHECK(r.pipeline.accepting());  // 31 pattern batches: under 16 x 2
  r.txn(r.a, 32, {"32"});
  CHECK_FALSE(r.pipeline.accepting());  // still bounded
  r.applier.complete(0);
  CHECK(r.pipeline.accepting());
}

TEST_CASE("Pipeline: a rule swap waits for the open transaction, then applies to the next") {
  Rig r(kDelete);
  r.pipeline.begin(r.a);
  r.insert(r.a, "1");
  r.pipeline.replace_rules(load_rules(R"(
version: 1
rules:
  - name: n
    table: t
    delete: "new:${id}"
)"));
  r.insert(r.a, "2");  // same transaction: still the old rules
  r.pipeline.commit(r.a, 1, 0);
  r.txn(r.a, 2, {"3"});
  CHECK(r.pipeline.rules().rules().front().name == "n");
  r.applier.complete_all();
  REQUIRE(r.applier.handed.size() == 2);
  CHECK(r.batch(0).deletes == Keys{"k:1", "k:2"});
  CHECK(r.batch(1).deletes == Keys{"new:3"});
  CHECK(r.a.confirmed.back() == 2);
}

TEST_CASE("Pipeline: second deletes hold the position until they are applied too") {
  Rig r(R"(
version: 1
rules:
  - name: k
    table: t
    delete: "k:${id}"
    redelete_after: 50ms
)");
  r.txn(r.a, 1, {"1"});
  r.txn(r.a, 2, {});
  CHECK(r.pipeline.deadline() == kNever);
  r.applier.complete(0);
  CHECK(r.a.confirmed.empty());
  const TimePoint due = r.pipeline.deadline();
  REQUIRE(due != kNever);
  r.pipeline.on_timer(due - std::chrono::milliseconds(1));
  CHECK(r.applier.handed.size() == 1);  // not yet due
  r.pipeline.on_timer(due);
  REQUIRE(r.applier.handed.size() == 2);
  CHECK(r.batch(1).deletes == Keys{"k:1"});
  CHECK(r.a.confirmed.empty());
  r.applier.complete(1);
  CHECK(r.a.confirmed == std::vector<Position>{2});
  CHECK(r.pipeline.stats().redeletes == 1);
}

TEST_CASE("Pipeline: bumps and the PUBLISH message of a transaction") {
  Rig r(R"(
version: 1
rules:
  - name: p
    table: t
    delete: "k:${id}"
    bump: "rev:${g}"
    publish: inv
)");
  r.txn(r.a, 7, {"1", "2"});
  REQUIRE(r.applier.handed.size() == 1);
  const Batch& b = r.batch(0);
  CHECK(b.deletes == Keys{"k:1", "k:2"});
  CHECK(b.bumps == Keys{"rev:g1", "rev:g2"});
  REQUIRE(b.publishes.size() == 1);
  CHECK(b.publishes[0].first == "inv");
  CHECK(b.publishes[0].second ==
        "{\"source\":\"A\",\"position\":\"7\",\"tables\":[\"public.t\"],\"keys\":[\"k:1\","
        "\"k:2\"],\"patterns\":[],\"revisions\":[\"rev:g1\",\"rev:g2\"],\"truncated\":false}");
}

TEST_CASE("Pipeline: a stream gets one entry per transaction, the same JSON as publish") {
  Rig r(R"(
version: 1
rules:
  - name: p
    table: t
    delete: "k:${id}"
    publish: inv
    stream: inv:s
  - name: only-stream
    table: t
    bump: "rev:${g}"
    stream: inv:s
)");
  r.txn(r.a, 7, {"1", "2"});
  REQUIRE(r.applier.handed.size() == 1);
  const Batch& b = r.batch(0);
  REQUIRE(b.streams.size() == 1);  // two rules, one stream: one entry
  CHECK(b.streams[0].first == "inv:s");
  CHECK(b.streams[0].second ==
        "{\"source\":\"A\",\"position\":\"7\",\"tables\":[\"public.t\"],\"keys\":[\"k:1\","
        "\"k:2\"],\"patterns\":[],\"revisions\":[\"rev:g1\",\"rev:g2\"],\"truncated\":false}");
  REQUIRE(b.publishes.size() == 1);  // publish lists only its own rule's keys
  CHECK(b.publishes[0].second.find("\"revisions\":[]") != std::string::npos);
  CHECK(r.pipeline.stats().stream_entries == 1);
  // A stream-only rule that fires with no key still adds an entry.
  Rig s(R"(
version: 1
rules:
  - name: s
    table: t
    stream: inv:s
)");
  s.txn(s.a, 3, {"9"});
  REQUIRE(s.applier.handed.size() == 1);
  REQUIRE(s.batch(0).streams.size() == 1);
  CHECK(s.batch(0).streams[0].second.find("\"keys\":[]") != std::string::npos);
}

TEST_CASE("Pipeline: a gap's widening publishes \"gap\": true, other widenings do not") {
  const char* rules = R"(
version: 1
rules:
  - name: p
    table: t
    delete: "k:${id}"
    publish: inv
)";
  Rig r(rules);
  r.pipeline.begin(r.a);
  r.pipeline.widen_table(r.a, "public", "t", Unknown::SlotGap);
  r.pipeline.commit(r.a, 1, 0);
  REQUIRE(r.applier.handed.size() == 1);
  CHECK(r.batch(0).patterns == Keys{"k:*"});
  REQUIRE(r.batch(0).publishes.size() == 1);
  CHECK(r.batch(0).publishes[0].second.find(",\"truncated\":false,\"gap\":true}") !=
        std::string::npos);
  CHECK(r.pipeline.stats().widenings_by_reason.at(Unknown::SlotGap) == 1);
  r.applier.complete(0);

  r.pipeline.begin(r.a);
  r.pipeline.widen_table(r.a, "public", "t", Unknown::Truncate);
  r.pipeline.commit(r.a, 2, 0);
  REQUIRE(r.applier.handed.size() == 2);
  CHECK(r.batch(1).publishes[0].second.find("gap") == std::string::npos);
}

TEST_CASE("Pipeline: ack records stay bounded while the applier holds a batch (issue 10 #5)") {
  // Redis is down: the first batch never completes. A long stream of transactions with
  // nothing new to apply (no rule fired, or keys already in the batch being accumulated)
  // must not grow the ledger by one record each.
  Rig r(kDelete);
  r.txn(r.a, 1, {"1"});
  REQUIRE(r.applier.handed.size() == 1);
  constexpr Position kLast = 200001;
  std::size_t most_records = 0;
  for (Position pos = 2; pos <= kLast; ++pos) {
    if (pos % 2 == 0) {
      r.txn(r.a, pos, {});  // no rule fired
    } else {
      r.txn(r.a, pos, {"2"});  // coalesces into the batch waiting behind the held one
    }
    REQUIRE(r.pipeline.accepting());
    most_records = std::max(most_records, r.pipeline.ack_records());
  }
  CHECK(most_records <= 4);
  CHECK(r.pipeline.in_flight() == kLast);  // every transaction is still owed
  CHECK(r.applier.handed.size() == 1);
  CHECK(r.a.confirmed.empty());
  // Redis is back: position 2 (nothing to apply, behind the first batch) is confirmable once
  // the first batch is applied; everything after waits for the accumulated batch.
  r.applier.complete(0);
  CHECK(r.a.confirmed == std::vector<Position>{2});
  REQUIRE(r.applier.handed.size() == 2);
  CHECK(r.batch(1).deletes == Keys{"k:2"});
  r.applier.complete(1);
  CHECK(r.a.confirmed == std::vector<Position>{2, kLast});
  CHECK(r.pipeline.stats().applied_transactions == kLast);
  CHECK(r.pipeline.idle());
}

TEST_CASE("Pipeline: an applier idle behind a failing batch gets later batches at once") {
  // Issue 10 #6: the first batch keeps failing and is set aside; later transactions must
  // still reach the applier (not wait for a completion that does not come), and nothing is
  // confirmed past the failing batch until it succeeds.
  Rig r(kDelete);
  r.txn(r.a, 1, {"1"});
  r.txn(r.a, 2, {"2"});
  CHECK(r.applier.handed.size() == 1);  // accumulating behind the busy applier
  CHECK(r.pipeline.deadline() == kNever);
  r.applier.idle_now = true;  // batch 0 failed and waits for its retry
  CHECK(r.pipeline.deadline() == TimePoint{});
  r.pipeline.on_timer(Clock::now());
  REQUIRE(r.applier.handed.size() == 2);
  CHECK(r.batch(1).deletes == Keys{"k:2"});
  r.txn(r.a, 3, {"3"});  // still idle: handed over at commit
  REQUIRE(r.applier.handed.size() == 3);
  r.applier.idle_now = false;
  r.applier.complete(1);
  r.applier.complete(2);
  CHECK(r.a.confirmed.empty());
  CHECK(r.pipeline.ack_records() == 1);  // the applied ones joined the failing one's record
  r.applier.complete(0);
  CHECK(r.a.confirmed == std::vector<Position>{3});
  CHECK(r.pipeline.idle());
}

TEST_CASE("Pipeline: a widened bump's pattern is not deleted again after redelete_after") {
  // Issue 14 part 4: an update whose old g the WAL did not carry bumps rev:g5 and deletes
  // rev:* (every counter the old g may have named). A second delete of rev:* after 50ms
  // would remove rev:g5, bumped by this very transaction: an app reading get(k) or 0 would
  // see the counter go back. Counters have no stale-set race, so only deletes go again.
  Rig r(R"(
version: 1
rules:
  - name: k
    table: t
    delete: "k:${id}"
    bump: "rev:${g}"
    redelete_after: 50ms
)");
  r.pipeline.begin(r.a);
  ChangeEvent ev;
  ev.op = Op::Update;
  ev.table = &r.table.table;
  ev.new_row = r.table.row({{"id", val("1")}, {"g", val("g5")}});  // no old row
  r.pipeline.change(r.a, ev);
  r.pipeline.commit(r.a, 1, 0);
  REQUIRE(r.applier.handed.size() == 1);
  CHECK(r.batch(0).patterns == Keys{"rev:*"});
  CHECK(r.batch(0).bumps == Keys{"rev:g5"});
  r.applier.complete(0);
  const TimePoint due = r.pipeline.deadline();
  REQUIRE(due != kNever);
  r.pipeline.on_timer(due);
  REQUIRE(r.applier.handed.size() == 2);
  CHECK(r.batch(1).deletes == Keys{"k:1"});
  CHECK(r.batch(1).patterns.empty());
  r.applier.complete(1);
  CHECK(r.a.confirmed == std::vector<Position>{1});
}

TEST_CASE("Pipeline: tracked origins name each command's rule (the dry run's rule label)") {
  const char* rules = R"(
version: 1
rules:
  - name: first
    table: t
    delete: ["k:${id}", "shared"]
    publish: inv
    redelete_after: 50ms
  - name: second
    table: t
    delete: "shared"
    bump: "rev:${g}"
    stream: inv:s
)";
  PipelineOptions o;
  o.track_origins = true;
  Rig r(rules, o);
  r.txn(r.a, 1, {"1"});
  r.txn(r.a, 2, {"2"});  // coalesced with the first while it is in the applier
  r.applier.complete(0);
  REQUIRE(r.applier.handed.size() == 2);
  const Batch& b0 = r.batch(0);
  CHECK(b0.deletes == Keys{"k:1", "shared"});
  CHECK(b0.origins.deletes == Keys{"first", "first"});  // "shared": the first rule to name it
  CHECK(b0.origins.bumps == Keys{"second"});
  CHECK(b0.origins.publishes == Keys{"first"});
  CHECK(b0.origins.streams == Keys{"second"});
  const Batch& b1 = r.batch(1);
  CHECK(b1.deletes == Keys{"k:2", "shared"});
  CHECK(b1.origins.deletes == Keys{"first", "first"});
  // Second deletes keep their rule.
  r.applier.complete(1);
  r.pipeline.on_timer(r.pipeline.deadline());
  REQUIRE(r.applier.handed.size() >= 3);
  CHECK(r.batch(2).origins.deletes.size() == r.batch(2).deletes.size());
  CHECK(r.batch(2).origins.deletes.front() == "first");
  // Untracked (the daemon's usual case): no origins at all.
  Rig u(rules);
  u.txn(u.a, 1, {"1"});
  REQUIRE(u.applier.handed.size() == 1);
  CHECK(u.batch(0).origins.deletes.empty());
  CHECK(u.batch(0).origins.publishes.empty());
}
