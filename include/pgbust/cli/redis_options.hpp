// The Redis target's options from the config: one mapping, so `run` and `check` validate the
// same thing.
#pragma once

#include "pgbust/core/config.hpp"
#include "pgbust/redis/redis.hpp"

namespace pgbust {

// One target's options (config::redis_targets(c) lists them all).
redis::Options redis_options(const config::Redis& r);
// The first (or only) target's.
redis::Options redis_options(const config::Config& c);

}  // namespace pgbust
