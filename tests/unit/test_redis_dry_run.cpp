// The dry-run target: counts and traces a batch's commands, completes it on the next loop
// round (never inside apply()), and refuses a trace file it cannot open.
#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/dry_run.hpp"
#include "test_support.hpp"

using namespace pgbust;

TEST_CASE("DryRunTarget: counts, traces and completes on the next round") {
  test::TempDir dir;
  const auto trace = dir.path() / "trace.jsonl";
  redis::DryRunTarget t(trace.string());
  CHECK(t.idle());
  CHECK(t.deadline() == kNever);
  Batch b;
  b.deletes = {"k:1", "k\"2"};
  b.patterns = {"p:*"};
  b.bumps = {"rev:x"};
  b.publishes = {{"inv", "{\"keys\":[]}"}};
  b.streams = {{"inv:s", "{}"}};
  b.origins.deletes = {"r1", "r2"};
  b.origins.patterns = {"r1"};
  b.origins.bumps = {"r1"};
  b.origins.publishes = {"r2"};
  b.origins.streams = {"r2"};
  int done = 0;
  t.apply(std::move(b), [&] { ++done; });
  CHECK(done == 0);  // never inside apply()
  CHECK_FALSE(t.idle());
  CHECK(t.deadline() <= Clock::now());
  t.on_timer(Clock::now());
  CHECK(done == 1);
  CHECK(t.idle());
  CHECK(t.commands().at("UNLINK") == 2);
  CHECK(t.commands().at("SCAN+UNLINK") == 1);
  CHECK(t.commands().at("INCR") == 1);
  CHECK(t.commands().at("PUBLISH") == 1);
  CHECK(t.commands().at("XADD") == 1);
  using RC = std::map<std::pair<std::string, std::string>, std::uint64_t>;
  CHECK(t.rule_commands() == RC{{{"r1", "UNLINK"}, 1},
                                {{"r2", "UNLINK"}, 1},
                                {{"r1", "SCAN+UNLINK"}, 1},
                                {{"r1", "INCR"}, 1},
                                {{"r2", "PUBLISH"}, 1},
                                {{"r2", "XADD"}, 1}});
  CHECK(t.state() == redis::State::Ready);
  t.close();
  std::ifstream in(trace);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(all ==
        "{\"command\":\"UNLINK\",\"key\":\"k:1\",\"rule\":\"r1\"}\n"
        "{\"command\":\"UNLINK\",\"key\":\"k\\\"2\",\"rule\":\"r2\"}\n"
        "{\"command\":\"SCAN+UNLINK\",\"key\":\"p:*\",\"rule\":\"r1\"}\n"
        "{\"command\":\"INCR\",\"key\":\"rev:x\",\"rule\":\"r1\"}\n"
        "{\"command\":\"PUBLISH\",\"channel\":\"inv\",\"rule\":\"r2\",\"message\":\"{\\\"keys\\\":["
        "]}\"}\n"
        "{\"command\":\"XADD\",\"key\":\"inv:s\",\"rule\":\"r2\",\"message\":\"{}\"}\n");
}

TEST_CASE("DryRunTarget: a trace file that cannot be opened names itself") {
  CHECK_THROWS_WITH_AS(redis::DryRunTarget("/nonexistent-dir/trace.jsonl"),
                       doctest::Contains("--trace /nonexistent-dir/trace.jsonl"), Error);
}
