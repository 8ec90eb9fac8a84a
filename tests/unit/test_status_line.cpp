// The health verdict and status line when Redis answers but refuses a batch.
#include "pgbust/ops/status_line.hpp"

#include <doctest/doctest.h>

using namespace pgbust;

TEST_CASE("status: a batch failing on a reachable Redis degrades health and says why") {
  PipelineStats p;
  p.transactions = 3;
  redis::Stats rs;
  StatusInput in;
  SourceStatus streaming;
  streaming.state = SourceState::Streaming;
  in.sources.emplace_back("logical", streaming);
  in.pipeline = &p;
  in.redis_state = redis::State::Ready;
  in.redis = &rs;
  CHECK(health(in) == Health::Healthy);
  rs.failing_batches = 1;
  in.redis_error = "redis 127.0.0.1:6379 db 0 (ready): SET NX rev:1 failed: OOM ...";
  CHECK(health(in) == Health::Degraded);
  CHECK(status_line(in).find("redis ready (1 batch failing: redis 127.0.0.1:6379 db 0 (ready): "
                             "SET NX rev:1 failed: OOM ...);") != std::string::npos);
}
