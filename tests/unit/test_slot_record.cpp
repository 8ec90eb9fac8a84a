// The logical source's slot record and the gap decision (promise 8): every combination of
// what the server says about the slot and what pgbust remembers of it.
#include <doctest/doctest.h>

#include "harness.hpp"
#include "pgbust/core/error.hpp"
#include "pgbust/sources/slot_record.hpp"

using namespace pgbust;

namespace {

slot::Facts facts(bool exists, std::string system = "7001", std::string wal_status = "reserved") {
  return {"pgbust", "127.0.0.1:5432 dbname=app user=pgbust", std::move(system), exists,
          std::move(wal_status)};
}

slot::Loaded missing() {
  return {};
}

slot::Loaded ok(std::string system = "7001", std::string open_gap = "") {
  slot::Loaded l;
  l.status = slot::Loaded::Status::Ok;
  l.record = {std::move(system), "app", "pgbust", "0/16B3748", std::move(open_gap)};
  return l;
}

slot::Loaded corrupt() {
  slot::Loaded l;
  l.status = slot::Loaded::Status::Corrupt;
  l.error = "/var/lib/pgbust/pgbust.slot: not JSON";
  return l;
}

}  // namespace

TEST_CASE("slot record: serialize and parse round-trip; a bad record says what was expected") {
  slot::Record r{"7312345678901234567", "app", "pgbust", "0/16B3748", "a \"quoted\" gap"};
  CHECK(slot::parse(slot::serialize(r)) == r);
  CHECK_THROWS_WITH_AS(slot::parse("{\"version\": 1}"),
                       doctest::Contains("no text \"system_identifier\"; expected a JSON object"),
                       Error);
  CHECK_THROWS_WITH_AS(slot::parse("nope"), doctest::Contains("not JSON"), Error);
  CHECK_THROWS_WITH_AS(slot::parse(slot::serialize(r).replace(12, 1, "2")),
                       doctest::Contains("unknown \"version\""), Error);
  CHECK(slot::file_for("/var/lib/pgbust", "pgbust") == "/var/lib/pgbust/pgbust.slot");
}

TEST_CASE("slot record: saved atomically, loaded as missing, ok or corrupt") {
  test::TempDir dir;
  auto file = slot::file_for((dir.path() / "state").string(), "s1");
  CHECK(slot::load(file).status == slot::Loaded::Status::Missing);
  slot::Record r{"7001", "app", "s1", "0/10", ""};
  slot::save(file, r);
  auto loaded = slot::load(file);
  REQUIRE(loaded.status == slot::Loaded::Status::Ok);
  CHECK(loaded.record == r);
  dir.write("state/s1.slot", "{\"version\": 1,");
  auto bad = slot::load(file);
  CHECK(bad.status == slot::Loaded::Status::Corrupt);
  CHECK(bad.error.find(file.string() + ": not JSON") == 0);
}

TEST_CASE("gap decision: what the server says about the slot against what pgbust remembers") {
  using G = slot::OnGap;
  struct Case {
    const char* what;
    slot::Facts facts;
    slot::Loaded record;
    G on_gap;
    const char* gap;     // part of the gap's reason, or nullptr for no gap
    const char* notice;  // part of the notice, or nullptr
  };
  const Case cases[] = {
      {"first start, slot created now", facts(false), missing(), G::Widen, nullptr,
       "changes committed before it existed are not covered"},
      {"first start, widen_at_start", facts(false), missing(), G::WidenAtStart,
       "first start on replication slot \"pgbust\"", nullptr},
      {"first start on a slot made by pgbust setup", facts(true), missing(), G::Widen, nullptr,
       nullptr},
      {"the slot pgbust streamed from", facts(true), ok(), G::Widen, nullptr, nullptr},
      {"the slot vanished", facts(false), ok(), G::Widen,
       "vanished (dropped, or invalidated and removed) after pgbust confirmed 0/16B3748", nullptr},
      {"another system (a restore, a new primary)", facts(true, "9999"), ok(), G::Widen,
       "is on system 9999, but pgbust last streamed it from system 7001", nullptr},
      {"another system and no slot", facts(false, "9999"), ok(), G::Widen, "is on system 9999",
       nullptr},
      {"a gap not closed before a crash", facts(true), ok("7001", "the slot vanished"), G::Widen,
       "was not closed before pgbust stopped (the slot vanished)", nullptr},
      {"an unreadable record", facts(true), corrupt(), G::Widen,
       "the slot record is unreadable (/var/lib/pgbust/pgbust.slot: not JSON)", nullptr},
  };
  for (const auto& c : cases) {
    std::string what = c.what;
    CAPTURE(what);
    auto d = slot::decide(c.facts, c.record, c.on_gap);
    if (c.gap) {
      REQUIRE(d.gap);
      CHECK(d.gap->find(c.gap) != std::string::npos);
      CHECK(d.gap->find("127.0.0.1:5432") != std::string::npos);  // names the server
    } else {
      CHECK_FALSE(d.gap);
    }
    if (c.notice) {
      REQUIRE(d.notice);
      CHECK(d.notice->find(c.notice) != std::string::npos);
    } else {
      CHECK_FALSE(d.notice);
    }
  }
}

TEST_CASE("gap decision: on_gap fail refuses a gap; a lost slot is refused with both remedies") {
  CHECK_THROWS_WITH_AS(slot::decide(facts(false), ok(), slot::OnGap::Fail),
                       doctest::Contains("on_gap: fail, so pgbust will not stream"), Error);
  CHECK_NOTHROW(slot::decide(facts(true), ok(), slot::OnGap::Fail));        // no gap: streams
  CHECK_NOTHROW(slot::decide(facts(false), missing(), slot::OnGap::Fail));  // first start
  for (auto g : {slot::OnGap::Widen, slot::OnGap::Fail}) {
    try {
      slot::decide(facts(true, "7001", "lost"), ok(), g);
      FAIL("a lost slot must be refused");
    } catch (const Error& e) {
      std::string m = e.what();
      CHECK(m.find("was invalidated by PostgreSQL (wal_status lost") != std::string::npos);
      CHECK(m.find("SELECT pg_drop_replication_slot('pgbust')") != std::string::npos);
      CHECK(m.find("widens every rule once") != std::string::npos);
      CHECK(m.find("max_slot_wal_keep_size") != std::string::npos);
    }
  }
  CHECK(slot::parse_on_gap("fail") == slot::OnGap::Fail);
  CHECK(slot::parse_on_gap("widen_at_start") == slot::OnGap::WidenAtStart);
  CHECK(slot::parse_on_gap("widen") == slot::OnGap::Widen);
}
