// examples/state-summary: the FastAPI state summary with revision watermarks. Its own
// schema, rules and config through the real daemon with the NOTIFY source (triggers made by
// `pgbust setup --notify --apply`): rev:summary:core strictly increases with every commit
// touching any of the twelve core tables, rev:summary:progress with progress events, each
// only for its own tables, and neither ever repeats a value after the counter is evicted.
#include <doctest/doctest.h>

#include <algorithm>

#include "example.hpp"

using namespace pgbust::test;

namespace {

const std::string kCore = "rev:summary:core", kProgress = "rev:summary:progress";

struct Summary {
  Example ex{"state-summary"};
  long long highest = 0;  // the highest revision ever seen, either counter

  Summary() {
    ex.check_shipped();
    ex.load_schema();
    ex.pg.exec(R"(
      INSERT INTO sites (name) VALUES ('Lyon');
      INSERT INTO areas (site_id, name) VALUES (1, 'Assembly');
      INSERT INTO lines (area_id, name) VALUES (1, 'L1'), (1, 'L2');
      INSERT INTO machines (line_id, name) VALUES (1, 'Press'), (2, 'Oven');
      INSERT INTO products (sku, name) VALUES ('SKU-1', 'Bracket');
      INSERT INTO recipes (product_id, version) VALUES (1, 1);
      INSERT INTO work_orders (recipe_id, line_id, quantity) VALUES (1, 1, 500);
      INSERT INTO operators (name) VALUES ('Ana');
      INSERT INTO shifts (name, starts_at, ends_at) VALUES ('Morning', '06:00', '14:00');
    )");
    ex.derive_config();
    ex.setup(/*notify=*/true);
    ex.check_db();
    ex.start();
  }

  std::optional<long long> rev(const std::string& key) {
    auto v = ex.redis.command({"GET", key});
    if (!v) return std::nullopt;
    long long r = std::stoll(*v);
    highest = std::max(highest, r);
    return r;
  }

  // Commits `sql` and checks which counters moved: each one that should strictly increased,
  // the other did not change. (With the NOTIFY source every notified row is a bump of its
  // own; the logical source bumps once per transaction. Either way, strictly increasing.)
  void step(const std::string& sql, bool core, bool progress) {
    CAPTURE(sql);
    auto core_before = rev(kCore), progress_before = rev(kProgress);
    ex.commit(sql);
    auto core_after = rev(kCore), progress_after = rev(kProgress);
    REQUIRE(core_after);
    REQUIRE(progress_after);
    if (core)
      CHECK(*core_after > *core_before);
    else
      CHECK(core_after == core_before);
    if (progress)
      CHECK(*progress_after > *progress_before);
    else
      CHECK(progress_after == progress_before);
  }
};

}  // namespace

TEST_CASE("state-summary: revision counters for the core tables and the progress events") {
  Summary s;
  auto& ex = s.ex;
  INFO(ex.logs());
  // The first start of a NOTIFY source widens (what was notified before it listened is
  // unknown): both counters exist and are seeded from the clock in microseconds.
  REQUIRE(s.rev(kCore));
  REQUIRE(s.rev(kProgress));
  CHECK(*s.rev(kCore) > 1'600'000'000'000'000LL);

  // Each of the twelve core tables, one commit each: core moves, progress does not.
  const char* core_writes[] = {
      "UPDATE sites SET name = 'Lyon Nord' WHERE id = 1",
      "INSERT INTO areas (site_id, name) VALUES (1, 'Paint')",
      "INSERT INTO lines (area_id, name) VALUES (1, 'L3')",
      "UPDATE machines SET status = 'running' WHERE id = 1",
      "INSERT INTO products (sku, name) VALUES ('SKU-2', 'Hinge')",
      "INSERT INTO recipes (product_id, version) VALUES (1, 2)",
      "INSERT INTO suppliers (name) VALUES ('Acme')",
      "INSERT INTO materials (supplier_id, name, stock) VALUES (1, 'Steel', 12)",
      "INSERT INTO operators (name) VALUES ('Ben')",
      "UPDATE shifts SET ends_at = '14:30' WHERE id = 1",
      "INSERT INTO shift_assignments VALUES (1, 1, 1, '2024-03-04')",
      "UPDATE work_orders SET status = 'released', updated_at = now() WHERE id = 1",
  };
  for (const char* sql : core_writes) s.step(sql, true, false);

  // Progress events: only the progress counter.
  s.step("INSERT INTO progress_events (work_order_id, done_quantity) VALUES (1, 50)", false, true);
  s.step(
      "INSERT INTO progress_events (work_order_id, done_quantity) "
      "SELECT 1, g FROM generate_series(60, 100, 10) g",
      false, true);

  // A machine heartbeat is not on the summary: nothing moves (changed: on machines).
  s.step("UPDATE machines SET last_heartbeat_at = now()", false, false);

  // One transaction over several core tables and progress: both move. The per-request
  // max(updated_at) check missed the DELETE and the materials change (no updated_at there).
  s.step(
      "BEGIN; DELETE FROM shift_assignments; UPDATE materials SET stock = stock - 1; "
      "INSERT INTO progress_events (work_order_id, done_quantity) VALUES (1, 120); COMMIT",
      true, true);

  // Rolled back: nothing.
  s.step(
      "BEGIN; UPDATE sites SET name = 'x'; INSERT INTO progress_events (work_order_id, "
      "done_quantity) VALUES (1, 1); ROLLBACK",
      false, false);

  // The counter is evicted (maxmemory, FLUSHDB, a failover to an empty replica): the next
  // bump is seeded from the clock again, above every value handed out before, so a summary
  // cached under an old stamp can never look current.
  long long before_eviction = s.highest;
  ex.redis.command({"DEL", kCore});
  ex.commit("UPDATE products SET name = 'Bracket v2' WHERE id = 1");
  auto reseeded = s.rev(kCore);
  REQUIRE(reseeded);
  CHECK(*reseeded > before_eviction);

  // The app seeds a missing counter the same way (SET NX with the clock in microseconds):
  // pgbust's next bump continues from it.
  ex.redis.command({"DEL", kProgress});
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  ex.redis.command({"SET", kProgress, std::to_string(now_us), "NX"});
  CHECK(now_us > before_eviction);
  s.step("INSERT INTO progress_events (work_order_id, done_quantity) VALUES (1, 130)", false, true);
  CHECK(*s.rev(kProgress) == now_us + 1);

  // TRUNCATE of the events (archiving): a bump like any other write.
  s.step("TRUNCATE progress_events", false, true);

  // The app's own check, as in the README: a summary stamped with the revision read before
  // it was built is stale as soon as a later commit bumps the counter.
  auto stamp = s.rev(kCore);
  ex.redis.command({"SET", "summary:core", "{\"rev\": " + std::to_string(*stamp) + "}"});
  ex.commit("INSERT INTO operators (name) VALUES ('Chloe')");
  CHECK(s.rev(kCore) != stamp);
}
