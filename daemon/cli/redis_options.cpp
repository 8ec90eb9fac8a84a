// The Redis target's options from the config.
#include "pgbust/cli/redis_options.hpp"

namespace pgbust {

redis::Options redis_options(const config::Config& c) {
  redis::Options o;
  o.url = c.redis.url;
  o.password_file = c.redis.password_file;
  o.connect_timeout = c.redis.connect_timeout;
  o.command_timeout = c.redis.command_timeout;
  o.cluster = c.redis.cluster;
  if (c.redis.tls) {
    const config::RedisTls& t = *c.redis.tls;
    o.tls = {true,       t.ca_file,     t.ca_path, t.cert_file,
             t.key_file, t.server_name, t.verify,  t.min_version};
  }
  return o;
}

}  // namespace pgbust
