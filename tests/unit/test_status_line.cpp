// The health verdict behind the status line and /healthz: `healthy` must mean nothing is
// being missed, and a daemon that never got going must not look merely slow.
#include <doctest/doctest.h>

#include "pgbust/ops/status_line.hpp"

using namespace pgbust;

namespace {

SourceStatus streaming() {
  SourceStatus s;
  s.state = SourceState::Streaming;
  s.position = "0/10";
  return s;
}

StatusInput input(SourceStatus s, double uptime = 5) {
  static PipelineStats none;
  StatusInput in;
  in.sources = {{"logical", std::move(s)}};
  in.pipeline = &none;
  in.redis = {RedisStatus{}};
  in.redis[0].state = redis::State::Ready;
  in.uptime_seconds = uptime;
  return in;
}

}  // namespace

TEST_CASE("healthy only while every source streams and nothing keeps it from being trusted") {
  CHECK(health(input(streaming())) == Health::Healthy);
  auto gap = streaming();
  gap.degraded = "gap: replication slot \"pgbust\" vanished";
  CHECK(health(input(gap)) == Health::Degraded);
  CHECK(status_line(input(gap)).find("logical streaming at 0/10 (gap: replication slot") !=
        std::string::npos);
  auto lagging = streaming();
  lagging.lag_seconds = 11;
  CHECK(health(input(lagging)) == Health::CatchingUp);
}

// Regression: a source that never streamed (a bad password, a missing publication) kept the
// verdict at `starting` forever, and /healthz never said anything was wrong.
TEST_CASE("starting lasts only until a source fails or the startup grace passes") {
  SourceStatus connecting;
  connecting.state = SourceState::Connecting;
  CHECK(health(input(connecting, 1)) == Health::Starting);
  CHECK(health(input(connecting, kStartupGraceSeconds + 1)) == Health::Degraded);
  SourceStatus failing;
  failing.state = SourceState::BackingOff;
  failing.errors = 1;
  failing.last_error = "password authentication failed";
  CHECK(health(input(failing, 1)) == Health::Degraded);
  CHECK(status_line(input(failing, 1)).rfind("degraded: logical backing off", 0) == 0);
}

TEST_CASE("status: a batch failing on a reachable Redis degrades health and says why") {
  PipelineStats p;
  p.transactions = 3;
  redis::Stats rs;
  StatusInput in;
  SourceStatus streaming;
  streaming.state = SourceState::Streaming;
  in.sources.emplace_back("logical", streaming);
  in.pipeline = &p;
  in.redis = {RedisStatus{}};
  in.redis[0].state = redis::State::Ready;
  in.redis[0].stats = &rs;
  CHECK(health(in) == Health::Healthy);
  rs.failing_batches = 1;
  in.redis[0].error = "redis 127.0.0.1:6379 db 0 (ready): SET NX rev:1 failed: OOM ...";
  CHECK(health(in) == Health::Degraded);
  CHECK(status_line(in).find("redis ready (1 batch failing: redis 127.0.0.1:6379 db 0 (ready): "
                             "SET NX rev:1 failed: OOM ...);") != std::string::npos);
}

TEST_CASE("status: several targets are each named with role and TLS; one down degrades") {
  auto in = input(streaming());
  in.redis.resize(2);
  in.redis[0] = {
      "eu",     redis::State::Ready, "10.0.0.1:6380 db 0 (TLS)", 0, nullptr, "", "master", true,
      "TLSv1.3"};
  in.redis[1] = {"us", redis::State::Ready, "10.0.0.2:6379 db 0", 0, nullptr, "", "replica", false,
                 ""};
  CHECK(health(in) == Health::Healthy);
  CHECK(status_line(in).find("; redis eu ready 10.0.0.1:6380 db 0 (TLS) [master, TLSv1.3]; "
                             "redis us ready 10.0.0.2:6379 db 0 [replica, no TLS];") !=
        std::string::npos);
  in.redis[1].state = redis::State::BackingOff;
  in.redis[1].down_seconds = 12;
  CHECK(health(in) == Health::Degraded);
  CHECK(status_line(in).find("redis us backing off 10.0.0.2:6379 db 0 [replica, no TLS] "
                             "(down 12s);") != std::string::npos);
  // One target: not named (as before), role and TLS still shown once known.
  in.redis.resize(1);
  CHECK(status_line(in).find("; redis ready 10.0.0.1:6380 db 0 (TLS) [master, TLSv1.3];") !=
        std::string::npos);
}

TEST_CASE("status line: a running keyspace pass and how far it got, per target") {
  PipelineStats p;
  redis::Stats rs;
  StatusInput in;
  in.pipeline = &p;
  in.redis = {RedisStatus{}};
  in.redis[0].state = redis::State::Ready;
  in.redis[0].stats = &rs;
  CHECK(status_line(in).find("keyspace pass") == std::string::npos);
  rs.pass_running = true;
  rs.pass_patterns = 3;
  rs.pass_scanned = 250000;
  rs.pass_dbsize = 1000000;
  CHECK(status_line(in).find(
            "redis ready (keyspace pass for 3 patterns: 250000 keys scanned of 1000000 (25%));") !=
        std::string::npos);
  rs.pass_dbsize = 0;  // DBSIZE refused or not answered yet
  rs.pass_patterns = 1;
  CHECK(status_line(in).find("(keyspace pass for 1 pattern: 250000 keys scanned);") !=
        std::string::npos);
  // Several targets: each says whether it runs a pass of its own.
  redis::Stats other;
  in.redis.push_back(RedisStatus{});
  in.redis[0].name = "eu";
  in.redis[1].name = "us";
  in.redis[1].state = redis::State::Ready;
  in.redis[1].stats = &other;
  CHECK(status_line(in).find(" redis eu ready (keyspace pass for 1 pattern: 250000 keys "
                             "scanned); redis us ready;") != std::string::npos);
}

// Several hosts, one active: a second instance waiting for the slot was `starting` (then
// `degraded`) forever; it is standby, which /healthz answers 200 for.
TEST_CASE("standby: every source standby is its own healthy verdict; mixed with active ones") {
  SourceStatus standby;
  standby.state = SourceState::Standby;
  standby.standby = "slot \"pgbust\" is active for PID 4242 (client 10.0.0.5)";
  standby.lag_bytes = -1;
  for (double uptime : {1.0, kStartupGraceSeconds + 1}) {
    auto in = input(standby, uptime);
    CHECK(health(in) == Health::Standby);
    CHECK(health_ok(health(in)));
    CHECK(status_line(in).rfind(
              "standby: logical standby (slot \"pgbust\" is active for PID 4242 (client "
              "10.0.0.5)); redis ready;",
              0) == 0);
  }
  CHECK_FALSE(active(standby));
  CHECK(active(streaming()));
  // Redis unreachable: a standby could not take over properly.
  auto down = input(standby, kStartupGraceSeconds + 1);
  down.redis[0].state = redis::State::Disconnected;
  CHECK(health(down) == Health::Degraded);
  CHECK_FALSE(health_ok(Health::Degraded));
  // Active for one source, standby for another: the active one decides.
  auto mixed = input(streaming());
  mixed.sources.emplace_back("notify", standby);
  CHECK(health(mixed) == Health::Healthy);
  auto gap = streaming();
  gap.degraded = "gap";
  mixed.sources[0].second = gap;
  CHECK(health(mixed) == Health::Degraded);
}
