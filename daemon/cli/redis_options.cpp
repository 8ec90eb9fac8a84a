// The Redis target's options from the config.
#include "pgbust/cli/redis_options.hpp"

namespace pgbust {

redis::Options redis_options(const config::Config& c) {
  redis::Options o;
  o.url = c.redis.url;
  o.password_file = c.redis.password_file;
  o.connect_timeout = c.redis.connect_timeout;
  o.command_timeout = c.redis.command_timeout;
  return o;
}

}  // namespace pgbust
