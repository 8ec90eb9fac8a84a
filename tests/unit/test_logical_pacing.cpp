// The logical source's acknowledgement ledger and read pacing, without a server.
#include <doctest/doctest.h>

#include "pgbust/sources/logical_pacing.hpp"

using namespace pgbust;
using logical::AckLedger;
using logical::ReadPacer;
using std::chrono::milliseconds;

TEST_CASE("ack ledger: reports what the pipeline confirmed, in order, never past delivery") {
  AckLedger a;
  CHECK(a.resume(100));  // the slot's confirmed position
  CHECK(a.reported() == 100);
  a.delivered(200, 1'000);
  a.delivered(300, 2'000);
  CHECK(a.oldest_unconfirmed_us() == 1'000);
  CHECK_FALSE(a.caught_up());
  CHECK(a.resume_from() == 300);  // a reconnect does not hand out 200 and 300 again

  CHECK(a.confirm(200));
  CHECK(a.reported() == 200);
  CHECK(a.oldest_unconfirmed_us() == 2'000);
  CHECK_FALSE(a.confirm(150));  // never backwards
  CHECK(a.reported() == 200);
  CHECK(a.confirm(10'000));  // clamped to what was delivered
  CHECK(a.reported() == 300);
  CHECK(a.caught_up());
  CHECK(a.oldest_unconfirmed_us() == 0);
}

TEST_CASE("ack ledger: an idle keepalive's WAL end once everything before it is confirmed") {
  AckLedger a;
  a.delivered(200, 1);
  CHECK_FALSE(a.keepalive(500));  // 200 not confirmed yet: 500 would skip it
  CHECK(a.reported() == 0);
  CHECK(a.confirm(200));
  CHECK(a.reported() == 500);  // the keepalive's end, now that 200 is confirmed
  a.delivered(600, 2);
  CHECK(a.keepalive(700) == false);  // 600 unconfirmed: stays at 500
  CHECK(a.reported() == 500);
  CHECK(a.confirm(600));
  CHECK(a.reported() == 700);
  CHECK_FALSE(a.keepalive(650));  // an older keepalive does not move it back
  CHECK(a.reported() == 700);
}

TEST_CASE("read pacer: rests only while the stream is busy, longer when busier") {
  ReadPacer p;
  TimePoint t0{};
  p.reset(t0);
  for (int i = 0; i < 50; ++i) p.message();
  CHECK(p.drained(t0 + milliseconds(10)) == milliseconds(0));  // 50 per 10 ms: read at once
  CHECK_FALSE(p.busy());
  for (int i = 0; i < 300; ++i) p.message();
  CHECK(p.drained(t0 + milliseconds(20)) == milliseconds(1));  // 300 per 10 ms
  CHECK(p.busy());
  for (int i = 0; i < 600; ++i) p.message();
  CHECK(p.drained(t0 + milliseconds(25)) == milliseconds(1));  // window not over: unchanged
  CHECK(p.drained(t0 + milliseconds(30)) == milliseconds(2));  // 600 per 10 ms
  for (int i = 0; i < 600; ++i) p.message();
  CHECK(p.drained(t0 + milliseconds(130)) == milliseconds(0));  // 600 per 100 ms: 60 per 10
  p.reset(t0);
  CHECK_FALSE(p.busy());
}
