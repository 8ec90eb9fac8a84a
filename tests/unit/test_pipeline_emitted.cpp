// Invalidations the application emits itself (pg_logical_emit_message(true, 'pgbust', ...)):
// the payload parser, and the pipeline applying them with their transaction, after commit,
// with the key prefix, or counting what it rejects.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pgbust/core/emitted.hpp"
#include "pgbust/pipeline/pipeline.hpp"
#include "pipeline_fakes.hpp"
#include "test_rules_support.hpp"

using namespace pgbust;
using pgbust::test_pipeline::FakeApplier;
using pgbust::test_pipeline::FakeSource;
using pgbust::test_rules::load_rules;
using Keys = std::vector<std::string>;

TEST_CASE("parse_emitted: every action, publish as a string or a list") {
  EmittedRejection why;
  auto r = parse_emitted(
      R"({"delete": ["k1", "k 2"], "delete_pattern": ["search:*"], "bump": ["rev:x"],)"
      R"( "publish": "inv"})",
      why);
  REQUIRE(r);
  CHECK(r->deletes == Keys{"k1", "k 2"});
  CHECK(r->patterns == Keys{"search:*"});
  CHECK(r->bumps == Keys{"rev:x"});
  CHECK(r->publish == Keys{"inv"});
  r = parse_emitted(R"({"bump": ["a"], "publish": ["c1", "c2"]})", why);
  REQUIRE(r);
  CHECK(r->publish == Keys{"c1", "c2"});
}

TEST_CASE("parse_emitted: rejections carry a reason and say what was expected") {
  struct Case {
    const char* content;
    const char* reason;
    const char* message;
  };
  const Case cases[] = {
      {"{\"delete\": [\"k\"", "json", "line 1 column 16 (byte 15)"},
      {"", "json", ""},
      {"[\"k\"]", "shape", "expected a JSON object, got array"},
      {"{}", "shape", "no action"},
      {"{\"delete\": \"k\"}", "shape", "delete: expected an array of strings, got string"},
      {"{\"bump\": [1]}", "shape", "bump[0]: expected a string, got number"},
      {"{\"delete\": [\"\"]}", "empty_key", "delete[0]: empty string"},
      {"{\"publish\": \"\"}", "empty_key", "publish: empty string"},
      {"{\"delete\": [\"k\"], \"flush\": true}", "shape", "unknown member \"flush\""},
      {"{\"delete\": [\"a\"], \"delete\": [\"b\"]}", "json", "duplicate"},
  };
  for (const auto& c : cases) {
    CAPTURE(std::string(c.content));
    EmittedRejection why;
    CHECK_FALSE(parse_emitted(c.content, why));
    CHECK(why.reason == c.reason);
    CAPTURE(why.message);
    CHECK(why.message.find(c.message) != std::string::npos);
  }
  EmittedRejection why;
  CHECK_FALSE(parse_emitted(std::string(kEmittedMaxBytes + 1, ' '), why));
  CHECK(why.reason == "too_large");
  std::string many = "{\"delete\": [";
  for (std::size_t i = 0; i <= kEmittedMaxItems; ++i) many += (i ? ",\"k\"" : "\"k\"");
  CHECK_FALSE(parse_emitted(many + "]}", why));
  CHECK(why.reason == "too_large");
}

namespace {

const char* kRules = R"(
version: 1
rules:
  - name: k
    table: t
    delete: "k:${id}"
)";

struct Rig {
  Rig() : pipeline(load_rules(kRules), rules::EngineOptions{":1:"}, applier, PipelineOptions{}) {}
  FakeApplier applier;
  FakeSource a{"A"};
  Pipeline pipeline;
};

}  // namespace

TEST_CASE("Pipeline: an emitted message joins its transaction, prefixed, applied after commit") {
  Rig r;
  r.pipeline.begin(r.a);
  r.pipeline.message(r.a, 5, true,
                     R"({"delete": ["k1", "k1"], "delete_pattern": ["s:*"], "bump": ["rev:x"],)"
                     R"( "publish": "inv"})");
  CHECK(r.applier.handed.empty());  // nothing before the commit
  r.pipeline.commit(r.a, 10, 0);
  REQUIRE(r.applier.handed.size() == 1);
  const Batch& b = r.applier.handed[0].batch;
  CHECK(b.deletes == Keys{":1:k1"});
  CHECK(b.patterns == Keys{":1:s:*"});  // the app's wildcard kept
  CHECK(b.bumps == Keys{":1:rev:x"});
  REQUIRE(b.publishes.size() == 1);
  CHECK(b.publishes[0].first == "inv");
  CHECK(b.publishes[0].second.find("\"keys\":[\":1:k1\"]") != std::string::npos);
  CHECK(b.publishes[0].second.find("\"revisions\":[\":1:rev:x\"]") != std::string::npos);
  CHECK(r.a.confirmed.empty());
  r.applier.complete(0);
  CHECK(r.a.confirmed == std::vector<Position>{10});
  CHECK(r.pipeline.stats().emitted_messages == 1);
}

TEST_CASE("Pipeline: a glob character in the key prefix is escaped in emitted patterns") {
  FakeApplier applier;
  FakeSource a{"A"};
  Pipeline p(load_rules(kRules), rules::EngineOptions{"app[1]:"}, applier, PipelineOptions{});
  p.begin(a);
  p.message(a, 5, true, R"({"delete_pattern": ["s:*"], "delete": ["k*"]})");
  p.commit(a, 10, 0);
  REQUIRE(applier.handed.size() == 1);
  CHECK(applier.handed[0].batch.patterns == Keys{"app\\[1\\]:s:*"});
  CHECK(applier.handed[0].batch.deletes == Keys{"app[1]:k*"});  // UNLINK: exact, no glob
}

TEST_CASE("Pipeline: rejected messages are counted by reason; the transaction goes on") {
  Rig r;
  r.pipeline.begin(r.a);
  r.pipeline.message(r.a, 5, true, "{not json");
  r.pipeline.message(r.a, 6, true, R"({"delete": 7})");
  r.pipeline.message(r.a, 7, false, R"({"delete": ["k2"]})");
  r.pipeline.commit(r.a, 10, 0);
  CHECK(r.applier.handed.empty());  // nothing to apply
  CHECK(r.a.confirmed == std::vector<Position>{10});
  const auto& rej = r.pipeline.stats().emitted_rejected;
  CHECK(rej.at("json") == 1);
  CHECK(rej.at("shape") == 1);
  CHECK(rej.at("non_transactional") == 1);
  CHECK(r.pipeline.stats().emitted_messages == 0);
}

TEST_CASE("Pipeline: an aborted transaction's emitted message is dropped") {
  Rig r;
  r.pipeline.begin(r.a);
  r.pipeline.message(r.a, 5, true, R"({"delete": ["gone"]})");
  r.pipeline.abort(r.a);
  r.pipeline.begin(r.a);
  r.pipeline.message(r.a, 15, true, R"({"delete": ["kept"]})");
  r.pipeline.commit(r.a, 20, 0);
  REQUIRE(r.applier.handed.size() == 1);
  CHECK(r.applier.handed[0].batch.deletes == Keys{":1:kept"});
}

TEST_CASE("Pipeline: tracked origins name the application for emitted commands") {
  FakeApplier applier;
  FakeSource a{"A"};
  PipelineOptions o;
  o.track_origins = true;
  Pipeline p(load_rules(kRules), rules::EngineOptions{}, applier, o);
  p.begin(a);
  p.message(a, 5, true, R"({"delete": ["x"], "bump": ["rev:x"], "publish": "inv"})");
  p.commit(a, 10, 0);
  REQUIRE(applier.handed.size() == 1);
  const Batch& b = applier.handed[0].batch;
  CHECK(b.origins.deletes == Keys{kApplicationOrigin});
  CHECK(b.origins.bumps == Keys{kApplicationOrigin});
  CHECK(b.origins.publishes == Keys{kApplicationOrigin});
}
