// FanOut: every batch goes to every target with its own key prefix; a transaction is
// confirmed only when every target applied it; a held target does not stop the others.
#include "pgbust/pipeline/fan_out.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pgbust/pipeline/pipeline.hpp"
#include "pipeline_fakes.hpp"
#include "test_rules_support.hpp"

using namespace pgbust;
using pgbust::test_pipeline::FakeApplier;
using pgbust::test_pipeline::FakeSource;
using pgbust::test_rules::Fixture;
using pgbust::test_rules::load_rules;
using pgbust::test_rules::val;
using Keys = std::vector<std::string>;

namespace {

const char* kRules = R"(
version: 1
rules:
  - name: k
    table: t
    delete: "k:${id}"
    delete_pattern: "list:${g}:*"
    bump: "rev:t"
    publish: inval
)";

// The same without the pattern delete: batches of exact keys, which the pipeline bounds at
// max_queued_batches (batches with patterns, which may wait for keyspace passes, have a
// larger allowance: Pipeline::accepting).
const char* kExactRules = R"(
version: 1
rules:
  - name: k
    table: t
    delete: "k:${id}"
    bump: "rev:t"
    publish: inval
)";

struct Rig {
  explicit Rig(PipelineOptions o = {}, const char* rules = kRules)
      : table("public", "t", {"id", "g"}, {"id"}),
        fan({{&a, "a:"}, {&b, "b*["}}),
        pipeline(load_rules(rules), {}, fan, o) {}

  void txn(Position position, const std::string& id) {
    pipeline.begin(src);
    ChangeEvent ev;
    ev.op = Op::Insert;
    ev.table = &table.table;
    ev.new_row = table.row({{"id", val(id)}, {"g", val("g" + id)}});
    pipeline.change(src, ev);
    pipeline.commit(src, position, 0);
  }

  Fixture table;
  FakeApplier a, b;
  FanOut fan;
  FakeSource src{"S"};
  Pipeline pipeline;
};

}  // namespace

TEST_CASE("FanOut: each target gets the batch under its own prefix, messages unchanged") {
  Rig r;
  r.txn(1, "1");
  REQUIRE(r.a.handed.size() == 1);
  REQUIRE(r.b.handed.size() == 1);
  const Batch& a = r.a.handed[0].batch;
  const Batch& b = r.b.handed[0].batch;
  CHECK(a.deletes == Keys{"a:k:1"});
  CHECK(a.patterns == Keys{"a:list:g1:*"});
  CHECK(a.bumps == Keys{"a:rev:t"});
  CHECK(b.deletes == Keys{"b*[k:1"});             // an exact key: the prefix as it is
  CHECK(b.patterns == Keys{"b\\*\\[list:g1:*"});  // a pattern: the prefix glob-escaped
  CHECK(b.bumps == Keys{"b*[rev:t"});
  REQUIRE(a.publishes.size() == 1);
  CHECK(a.publishes == b.publishes);
}

TEST_CASE("FanOut: confirmed only when every target applied; a held target holds the rest") {
  PipelineOptions o;
  o.max_batch_keys = 1;  // every transaction its own batch
  o.max_queued_batches = 3;
  Rig r(o, kExactRules);
  r.txn(1, "1");
  r.a.complete(0);  // a applied it, b holds it
  CHECK(r.src.confirmed.empty());
  CHECK(r.pipeline.in_flight() == 1);
  r.a.idle_now = true;  // a has nothing left to work on
  r.txn(2, "2");
  r.txn(3, "3");
  // a keeps applying up to the bound while b holds everything
  REQUIRE(r.a.handed.size() == 3);
  r.a.complete(1);
  r.a.complete(2);
  CHECK(r.src.confirmed.empty());
  CHECK_FALSE(r.pipeline.accepting());  // back-pressure: three batches not done by b
  r.b.complete(1);                      // b applies a later one first: still nothing
  CHECK(r.src.confirmed.empty());
  r.b.complete(0);
  CHECK(r.src.confirmed == std::vector<Position>{2});
  r.b.complete(2);
  CHECK(r.src.confirmed == std::vector<Position>{2, 3});
  CHECK(r.pipeline.idle());
}

TEST_CASE("FanOut: batches with pattern deletes that a held target holds stop the sources later") {
  // They may only be waiting for keyspace passes, so they have their own allowance (16 times
  // max_queued_batches); a target that holds every one of them still stops the sources there.
  PipelineOptions o;
  o.max_batch_keys = 1;  // every transaction its own batch
  o.max_queued_batches = 3;
  Rig r(o);
  r.a.idle_now = true;
  Position n = 0;
  while (r.pipeline.accepting() && n < 1000) {
    ++n;
    r.txn(n, std::to_string(n));
    r.a.complete(r.a.handed.size() - 1);  // a applies each at once, b holds them
  }
  CHECK(n == 48);
  CHECK(r.b.outstanding() == 48);
  CHECK(r.src.confirmed.empty());
  r.b.complete_all();
  CHECK(r.src.last() == 48);
  CHECK(r.pipeline.accepting());
}

TEST_CASE("FanOut: idle when some target is idle, so a held one does not stall the rest") {
  FakeApplier a, b;
  FanOut fan({{&a, ""}, {&b, ""}});
  CHECK_FALSE(fan.idle());
  b.idle_now = true;
  CHECK(fan.idle());
  bool done = false;
  fan.apply(Batch{}, [&] { done = true; });
  a.complete(0);
  CHECK_FALSE(done);
  b.complete(0);
  CHECK(done);
}
