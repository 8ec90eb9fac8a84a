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
  auto tls = [](const config::RedisTls& t) {
    return redis::TlsOptions{true,       t.ca_file,     t.ca_path, t.cert_file,
                             t.key_file, t.server_name, t.verify,  t.min_version};
  };
  if (r.tls) o.tls = tls(*r.tls);
  if (r.sentinel) {
    const config::RedisSentinel& s = *r.sentinel;
    o.sentinel.master = s.master;
    o.sentinel.addresses = s.addresses;
    o.sentinel.user = s.user;
    o.sentinel.password_file = s.password_file;
    if (s.tls) o.sentinel.tls = tls(*s.tls);
  }
  return o;
}

redis::Options redis_options(const config::Config& c) {
  return redis_options(c.redis);
}

}  // namespace pgbust
