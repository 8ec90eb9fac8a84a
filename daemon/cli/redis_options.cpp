// The Redis target's options from the config.
#include "pgbust/cli/redis_options.hpp"

namespace pgbust {

redis::Options redis_options(const config::Redis& r) {
  redis::Options o;
  o.name = r.name;
  o.url = r.url;
  o.password_file = r.password_file;
  o.connect_timeout = r.connect_timeout;
  o.command_timeout = r.command_timeout;
  o.cluster = r.cluster;
  o.stream_maxlen = r.stream_maxlen;
  if (r.tls) {
    const config::RedisTls& t = *r.tls;
    o.tls = {true,       t.ca_file,     t.ca_path, t.cert_file,
             t.key_file, t.server_name, t.verify,  t.min_version};
  }
  return o;
}

redis::Options redis_options(const config::Config& c) {
  return redis_options(c.redis);
}

}  // namespace pgbust
