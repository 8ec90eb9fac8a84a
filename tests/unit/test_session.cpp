// The reconnecting-connection state machine and its backoff, without a server.
#include <doctest/doctest.h>

#include "pgbust/core/session.hpp"

using namespace pgbust;
using std::chrono::milliseconds;

namespace {

RetryPolicy policy() {
  RetryPolicy p;
  p.min = milliseconds(100);
  p.max = milliseconds(1'000);
  p.jitter = 0;  // exact delays
  p.stable_after = milliseconds(30'000);
  p.log_interval = milliseconds(60'000);
  return p;
}

milliseconds delay(const Session& s, TimePoint now) {
  return std::chrono::duration_cast<milliseconds>(s.retry_at() - now);
}

}  // namespace

TEST_CASE("backoff: doubles from min to max; jitter stays within [1 - jitter, 1] of the step") {
  RetryPolicy p = policy();
  Backoff b(p);
  std::vector<long> got;
  for (int i = 0; i < 6; ++i) got.push_back(static_cast<long>(b.next().count()));
  CHECK(got == std::vector<long>{100, 200, 400, 800, 1000, 1000});
  p.jitter = 0.5;
  Backoff j(p);
  for (int i = 0; i < 200; ++i) {
    auto d = j.next().count();
    CHECK(d >= 50);
    CHECK(d <= 1000);
  }
}

TEST_CASE("session: reaching the working phase does not reset the backoff; progress does") {
  Session s("test", policy());
  TimePoint t{};
  CHECK(s.due(t));
  s.connecting(t, milliseconds(50));
  CHECK(s.reconnects() == 0);
  CHECK(s.deadline() == t + milliseconds(50));
  s.starting(t + milliseconds(10));
  s.up(t);
  s.fail("boom", t);  // failed right after starting to stream
  CHECK(s.phase() == Phase::BackingOff);
  CHECK(delay(s, t) == milliseconds(100));
  for (milliseconds want : {milliseconds(200), milliseconds(400)}) {
    t = s.retry_at();
    REQUIRE(s.due(t));
    s.connecting(t, milliseconds(50));
    s.up(t);
    s.fail("boom", t);
    CHECK(delay(s, t) == want);
  }
  CHECK(s.reconnects() == 2);
  CHECK(s.errors() == 3);
  CHECK(s.failures() == 3);
  REQUIRE(s.down_since());

  t = s.retry_at();
  s.connecting(t, milliseconds(50));
  s.up(t);
  s.progress(t);  // a commit arrived
  CHECK(s.failures() == 0);
  CHECK_FALSE(s.down_since());
  s.fail("boom", t);
  CHECK(delay(s, t) == milliseconds(100));
}

TEST_CASE("session: staying up for stable_after resets the backoff at the next failure") {
  Session s("test", policy());
  TimePoint t{};
  for (int i = 0; i < 4; ++i) {
    s.connecting(t, milliseconds(50));
    s.up(t);
    s.fail("boom", t);
    t = s.retry_at();
  }
  CHECK(delay(s, t - milliseconds(800)) == milliseconds(800));
  s.connecting(t, milliseconds(50));
  s.up(t);
  t += milliseconds(30'000);
  s.fail("boom", t);
  CHECK(delay(s, t) == milliseconds(100));
}

TEST_CASE("session: deadlines, phase names, prefix, counters, stopping") {
  Session s("redis", policy(), Session::Labels{"connecting", "handshake", "ready"});
  s.set_server("127.0.0.1:6379");
  TimePoint t{};
  s.connecting(t, milliseconds(50));
  CHECK(s.prefix() == "redis [connecting] 127.0.0.1:6379");
  CHECK_FALSE(s.expired(t + milliseconds(49)));
  CHECK(s.expired(t + milliseconds(50)));
  s.starting(t + milliseconds(70));
  CHECK(s.phase_name() == "handshake");
  CHECK(s.state() == SourceState::Starting);
  s.up(t);
  CHECK(s.phase_name() == "ready");
  CHECK(s.deadline() == kNever);
  s.count_error("a line\n\tof two");
  CHECK(s.last_error() == "a line of two");
  CHECK(s.errors() == 1);
  CHECK(s.phase() == Phase::Up);
  s.stop_retrying();
  CHECK(s.phase_name() == "stopped");
  s.fail("gone", t);
  CHECK(s.phase() == Phase::Stopped);
  CHECK(s.deadline() == kNever);
  CHECK_FALSE(s.due(t + milliseconds(10'000)));
}

TEST_CASE("log limiter: one line per interval for a repeated message, a new one at once") {
  LogLimiter l(milliseconds(1'000));
  TimePoint t{};
  std::uint64_t held = 0;
  CHECK(l.allow("a", t, held));
  CHECK_FALSE(l.allow("a", t + milliseconds(10), held));
  CHECK_FALSE(l.allow("a", t + milliseconds(20), held));
  CHECK(l.allow("a", t + milliseconds(1'000), held));
  CHECK(held == 2);
  CHECK(l.allow("b", t + milliseconds(1'001), held));
  CHECK(held == 0);
}

TEST_CASE("session: standby is a state of its own, said once, not a failure or a reconnect") {
  Session s("logical", policy());
  TimePoint t{};
  s.connecting(t, milliseconds(50));
  s.starting(t + milliseconds(70));
  CHECK(s.standby("slot \"pgbust\" is active for PID 7", t));
  CHECK_FALSE(s.standby("slot \"pgbust\" is active for PID 8", t));  // already: not said again
  CHECK(s.state() == SourceState::Standby);
  CHECK(s.phase_name() == "standby");
  SourceStatus st;
  s.fill(st);
  CHECK(st.standby == "slot \"pgbust\" is active for PID 8");
  CHECK(st.errors == 0);
  s.up(t);
  CHECK(s.state() == SourceState::Streaming);
  CHECK_FALSE(s.is_standby());
  s.fill(st);
  CHECK(st.standby.empty());
  // A real failure ends standby; the connects made while standby are not reconnects.
  s.fail("gone", t);
  s.connecting(t, milliseconds(50));
  CHECK(s.reconnects() == 1);
  s.standby("held", t);
  s.fail("gone", t);
  CHECK(s.state() == SourceState::BackingOff);
  s.standby("held", t);
  s.reconnect_now();
  s.connecting(t, milliseconds(50));
  CHECK(s.reconnects() == 1);
}
