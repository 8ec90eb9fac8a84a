// The Redis target's options from the config: one mapping, so `run` and `check` validate the
// same thing.
#pragma once

#include "pgbust/core/config.hpp"
#include "pgbust/redis/redis.hpp"

namespace pgbust {

redis::Options redis_options(const config::Config& c);

}  // namespace pgbust
