// Config file loading: defaults, every section, and errors with file:line:column.
#include <doctest/doctest.h>

#include <cstdlib>

#include "pgbust/core/config.hpp"

using namespace pgbust::config;

namespace {
std::vector<std::string> problems_of(const std::string& text) {
  try {
    parse(text, "/etc/pgbust/pgbust.yaml");
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}
}  // namespace

TEST_CASE("a full config is read with its values and relative rules path") {
  auto c = parse(R"(
postgres: {conninfo: "host=127.0.0.1 port=5433 dbname=app"}
sources:
  logical: {slot: s1, publication: p1, create_slot: false, status_interval: 500ms}
  notify: {channels: [a, b], on_gap: ignore}
  poll:
    interval: 2s
    state_dir: /tmp/state
    tables:
      - {table: public.act, watermark: [id]}
      - {table: tasks, watermark: [updated_at, id], overlap: 1m}
redis: {url: "redis://127.0.0.1:6380/2", key_prefix: ":1:", command_timeout: 1.5s}
rules: rules.d
status: {interval: 10s, listen: "127.0.0.1:9999", wal_warn_bytes: 512MB}
limits: {max_keys_per_transaction: 10}
log: {level: debug}
)",
                 "/etc/pgbust/pgbust.yaml");
  CHECK(c.conninfo == "host=127.0.0.1 port=5433 dbname=app");
  REQUIRE(c.logical);
  CHECK(c.logical->slot == "s1");
  CHECK_FALSE(c.logical->create_slot);
  CHECK(c.logical->status_interval == milliseconds(500));
  REQUIRE(c.notify);
  CHECK(c.notify->channels == std::vector<std::string>{"a", "b"});
  CHECK(c.notify->on_gap == "ignore");
  REQUIRE(c.poll);
  REQUIRE(c.poll->tables.size() == 2);
  CHECK(c.poll->tables[1].schema == "public");
  CHECK(c.poll->tables[1].table == "tasks");
  CHECK(c.poll->tables[1].overlap == milliseconds(60000));
  CHECK(c.redis.key_prefix == ":1:");
  CHECK(c.redis.command_timeout == milliseconds(1500));
  CHECK(c.rules == std::filesystem::path("/etc/pgbust/rules.d"));
  CHECK(c.status.wal_warn_bytes == 512LL * 1024 * 1024);
  CHECK(c.limits.max_keys_per_transaction == 10);
  CHECK(c.log_level == "debug");
}

TEST_CASE("without a sources section the logical source runs with defaults") {
  auto c = parse("rules: /r.yaml\n", "x.yaml");
  REQUIRE(c.logical);
  CHECK(c.logical->slot == "pgbust");
  CHECK_FALSE(c.notify);
  CHECK(c.rules == std::filesystem::path("/r.yaml"));
}

TEST_CASE("defaults: metrics on loopback, not postgres_exporter's 9187; text logs") {
  auto c = parse("rules: /r.yaml\n", "x.yaml");
  CHECK(c.status.listen == "127.0.0.1:9709");
  CHECK(c.log_format == "text");
  CHECK(c.log_journal == "auto");
  auto j = parse("rules: /r.yaml\nlog: {format: json, journal: yes}\n", "x.yaml");
  CHECK(j.log_format == "json");
  CHECK(j.log_journal == "yes");
  CHECK_THROWS_WITH_AS(parse("rules: /r.yaml\nlog: {format: xml}\n", "x.yaml"),
                       doctest::Contains("x.yaml:2:15"), pgbust::config::ConfigError);
}

TEST_CASE("redis.tls: every setting read; absent means no TLS settings") {
  auto c = parse(
      "rules: r\nredis:\n  url: rediss://cache:6380/0\n  tls:\n    ca_file: /etc/ca.pem\n"
      "    ca_path: /etc/ssl/certs\n    cert_file: /c.pem\n    key_file: /c.key\n"
      "    server_name: cache.internal\n    verify: ca\n    min_version: \"1.3\"\n",
      "x.yaml");
  REQUIRE(c.redis.tls);
  CHECK(c.redis.tls->ca_file == "/etc/ca.pem");
  CHECK(c.redis.tls->ca_path == "/etc/ssl/certs");
  CHECK(c.redis.tls->cert_file == "/c.pem");
  CHECK(c.redis.tls->key_file == "/c.key");
  CHECK(c.redis.tls->server_name == "cache.internal");
  CHECK(c.redis.tls->verify == "ca");
  CHECK(c.redis.tls->min_version == "1.3");
  auto d = parse("rules: r\nredis: {url: rediss://cache/0, tls: {}}\n", "x.yaml");
  REQUIRE(d.redis.tls);
  CHECK(d.redis.tls->verify == "full");
  CHECK_FALSE(parse("rules: r\n", "x.yaml").redis.tls);
}

TEST_CASE("every problem is reported with its position, all at once") {
  struct Case {
    std::string text;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"rules: r\nredis: {urll: x}\n",
       "/etc/pgbust/pgbust.yaml:2:9: error: unknown key 'urll' in redis; expected one of: url, "
       "password_file, key_prefix, connect_timeout, command_timeout, cluster, tls, sentinel, "
       "name, stream_maxlen"},
      {"rules: r\nredis:\n  tls: {ca_file: /ca.pem, verfy: full}\n",
       "/etc/pgbust/pgbust.yaml:3:27: error: unknown key 'verfy' in redis.tls; expected one of: "
       "ca_file, ca_path, cert_file, key_file, server_name, verify, min_version"},
      {"rules: r\nredis: {tls: {verify: maybe}}\n",
       "/etc/pgbust/pgbust.yaml:2:23: error: redis.tls.verify is 'maybe'; expected one of: full, "
       "ca, none"},
      {"rules: r\nredis: {tls: {min_version: 1.1}}\n",
       "/etc/pgbust/pgbust.yaml:2:28: error: redis.tls.min_version is '1.1'; expected one of: "
       "1.2, 1.3"},
      {"rules: r\nredis: {tls: {cert_file: /c.pem}}\n",
       "/etc/pgbust/pgbust.yaml:2:14: error: redis.tls needs both cert_file and key_file for a "
       "client certificate (or neither)"},
      {"rules: r\nstatus: {interval: soon}\n",
       "/etc/pgbust/pgbust.yaml:2:20: error: status.interval must be a duration like 500ms, 2s, "
       "5m or 1h"},
      {"rules: r\nsources: {logical: {create_slot: maybe}}\n",
       "/etc/pgbust/pgbust.yaml:2:34: error: sources.logical.create_slot must be true or false"},
      {"redis: {}\n",
       "/etc/pgbust/pgbust.yaml:1:1: error: missing 'rules: PATH' (a rules file or rules.d "
       "directory)"},
      {"rules: r\nsources: {notify: {on_gap: shrug}}\n",
       "/etc/pgbust/pgbust.yaml:2:28: error: sources.notify.on_gap is 'shrug'; expected one of: "
       "widen, ignore"},
      {"rules: r\nlimits: {max_batch_keys: -3}\n",
       "/etc/pgbust/pgbust.yaml:2:26: error: limits.max_batch_keys must be a positive whole "
       "number"},
      {"rules: [\n",
       "/etc/pgbust/pgbust.yaml:2:1: error: invalid YAML: end of sequence flow not found"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto p = problems_of(c.text);
    REQUIRE(p.size() == 1);
    CHECK(p[0] == c.expected);
  }
  auto many = problems_of("rules: r\nfoo: 1\nredis: {bar: 2}\n");
  CHECK(many.size() == 2);
}

TEST_CASE("sources.notify.tables: optional, schema defaults to public, names checked") {
  auto none = parse("rules: r\nsources: {notify: {channels: [c]}}\n", "f.yaml");
  REQUIRE(none.notify);
  CHECK(none.notify->tables.empty());  // every table the rules name
  auto some = parse("rules: r\nsources: {notify: {tables: [orders, shop.items]}}\n", "f.yaml");
  REQUIRE(some.notify);
  CHECK(some.notify->tables == std::vector<std::string>{"public.orders", "shop.items"});
  auto bad = problems_of("rules: r\nsources: {notify: {tables: [shop.]}}\n");
  REQUIRE(bad.size() == 1);
  CHECK(bad[0] ==
        "/etc/pgbust/pgbust.yaml:2:28: error: sources.notify.tables entry 'shop.' is not "
        "a table name (schema.table)");
}

TEST_CASE("durations and sizes") {
  CHECK(parse_duration("500ms") == milliseconds(500));
  CHECK(parse_duration("2s") == milliseconds(2000));
  CHECK(parse_duration("3") == milliseconds(3000));
  CHECK(parse_duration("1h") == milliseconds(3600000));
  CHECK_FALSE(parse_duration("fast"));
  CHECK_FALSE(parse_duration("2 parsecs"));
  CHECK(parse_size("1GB") == (1LL << 30));
  CHECK(parse_size("4096") == 4096);
  CHECK_FALSE(parse_size("lots"));
}

TEST_CASE(
    "state_dir defaults to systemd's $STATE_DIRECTORY, so each pgbust@ instance has its own") {
  const char* saved = std::getenv("STATE_DIRECTORY");
  std::string saved_value = saved ? saved : "";
  ::setenv("STATE_DIRECTORY", "/var/lib/pgbust/main:/var/lib/other", 1);
  auto c = parse(R"(
postgres: {conninfo: "dbname=app"}
sources:
  logical: {slot: s1}
  poll: {tables: [{table: public.act, watermark: [id]}]}
rules: rules.d
)",
                 "/etc/pgbust/main.yaml");
  ::unsetenv("STATE_DIRECTORY");
  auto plain = parse(R"(
postgres: {conninfo: "dbname=app"}
sources: {logical: {slot: s1}}
rules: rules.d
)",
                     "/etc/pgbust/pgbust.yaml");
  if (saved) ::setenv("STATE_DIRECTORY", saved_value.c_str(), 1);
  REQUIRE(c.logical);
  CHECK(c.logical->state_dir == "/var/lib/pgbust/main");
  REQUIRE(c.poll);
  CHECK(c.poll->state_dir == "/var/lib/pgbust/main");
  REQUIRE(plain.logical);
  CHECK(plain.logical->state_dir == "/var/lib/pgbust");
}

TEST_CASE("redis: one mapping is one target named after its host and port") {
  auto c = parse("rules: r\nredis: {url: \"redis://u:secret@cache:6380/1\"}\n", "x.yaml");
  CHECK(c.redis.name == "cache:6380");
  CHECK(c.more_redis.empty());
  CHECK(c.redis.stream_maxlen == 10000);
  CHECK(redis_targets(c).size() == 1);
  CHECK(parse("rules: r\n", "x.yaml").redis.name == "127.0.0.1:6379");
  CHECK(parse("rules: r\nredis: {url: \"unix:///run/r.sock?db=2\"}\n", "x.yaml").redis.name ==
        "/run/r.sock");
  CHECK(parse("rules: r\nredis: {url: \"redis://cache\"}\n", "x.yaml").redis.name == "cache:6379");
}

TEST_CASE("redis: a list of targets, each with its own settings; names derived unique") {
  auto c = parse(R"(rules: r
redis:
  - {url: "redis://10.0.0.1:6379/0", key_prefix: "a:"}
  - name: eu
    url: "rediss://cache.eu:6380/0"
    tls: {verify: ca}
    stream_maxlen: 50
  - {url: "redis://10.0.0.1:6379/3"}
)",
                 "x.yaml");
  auto all = redis_targets(c);
  REQUIRE(all.size() == 3);
  CHECK(all[0].name == "10.0.0.1:6379");
  CHECK(all[0].key_prefix == "a:");
  CHECK_FALSE(all[0].tls);
  CHECK(all[1].name == "eu");
  CHECK(all[1].url == "rediss://cache.eu:6380/0");
  REQUIRE(all[1].tls);
  CHECK(all[1].tls->verify == "ca");
  CHECK(all[1].stream_maxlen == 50);
  CHECK(all[2].name == "10.0.0.1:6379-2");
  CHECK(all[2].key_prefix.empty());
}

TEST_CASE("redis: a list entry may be a Redis Cluster (cluster: true or a cluster URL)") {
  auto c = parse(R"(rules: r
redis:
  - {url: "redis://10.0.0.1:6379/0"}
  - {url: "redis://10.0.0.2:7000", cluster: true}
  - {url: "redis+cluster://pgbust@10.0.0.3:7000,10.0.0.4:7000"}
)",
                 "x.yaml");
  auto all = redis_targets(c);
  REQUIRE(all.size() == 3);
  CHECK_FALSE(all[0].cluster);
  CHECK(all[1].cluster);
  CHECK(all[1].name == "10.0.0.2:7000");
  CHECK_FALSE(all[2].cluster);  // the URL says it (redis_options passes the URL on)
  CHECK(all[2].name == "10.0.0.3:7000");
  CHECK(parse("rules: r\nredis: {cluster: true}\n", "x.yaml").redis.cluster);
}

TEST_CASE("redis: list errors name the entry, its position and what was expected") {
  struct Case {
    std::string text, expected;
  };
  std::vector<Case> cases = {
      {"rules: r\nredis:\n  - {name: a, url: \"redis://x\"}\n  - {name: a, url: \"redis://y\"}\n",
       "/etc/pgbust/pgbust.yaml:4:12: error: redis[2].name 'a' is already the name of redis[1]; "
       "every target needs its own name"},
      {"rules: r\nredis: []\n",
       "/etc/pgbust/pgbust.yaml:2:8: error: redis must be a mapping (one target) or a non-empty "
       "list of targets"},
      {"rules: r\nredis:\n  - {url: \"redis://x\"}\n  - {urll: y}\n",
       "/etc/pgbust/pgbust.yaml:4:6: error: unknown key 'urll' in redis[2]; expected one of: url, "
       "password_file, key_prefix, connect_timeout, command_timeout, cluster, tls, sentinel, "
       "name, stream_maxlen"},
      {"rules: r\nredis:\n  - {tls: {cert_file: /c.pem}}\n",
       "/etc/pgbust/pgbust.yaml:3:11: error: redis[1].tls needs both cert_file and key_file for a "
       "client certificate (or neither)"},
      {"rules: r\nredis:\n  - {name: \"\"}\n",
       "/etc/pgbust/pgbust.yaml:3:12: error: redis[1].name must not be empty"},
      {"rules: r\nredis: {stream_maxlen: 0}\n",
       "/etc/pgbust/pgbust.yaml:2:24: error: redis.stream_maxlen must be a positive whole number"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto p = problems_of(c.text);
    REQUIRE(p.size() == 1);
    CHECK(p[0] == c.expected);
  }
}

TEST_CASE("redis.sentinel: every setting read; the target is named after the master") {
  auto c = parse(R"(rules: r
redis:
  url: "redis://app@x/2"
  password_file: /etc/pgbust/redis-password
  sentinel:
    master: mymaster
    addresses: ["10.0.0.1:26379", "[::1]:26380"]
    user: watcher
    password_file: /etc/pgbust/sentinel-password
    tls: {ca_file: /ca.pem, verify: ca}
)",
                 "x.yaml");
  REQUIRE(c.redis.sentinel);
  const RedisSentinel& s = *c.redis.sentinel;
  CHECK(s.master == "mymaster");
  CHECK(s.addresses == std::vector<std::string>{"10.0.0.1:26379", "[::1]:26380"});
  CHECK(s.user == "watcher");
  CHECK(s.password_file == "/etc/pgbust/sentinel-password");
  REQUIRE(s.tls);
  CHECK(s.tls->ca_file == "/ca.pem");
  CHECK(s.tls->verify == "ca");
  CHECK(c.redis.name == "mymaster");
  CHECK(c.redis.password_file == "/etc/pgbust/redis-password");
  CHECK_FALSE(parse("rules: r\nredis: {url: \"redis://x\"}\n", "x.yaml").redis.sentinel);
}

TEST_CASE("redis.sentinel: errors name the position and what was expected") {
  struct Case {
    std::string text, expected;
  };
  std::vector<Case> cases = {
      {"rules: r\nredis: {sentinel: {addresses: [\"h:1\"]}}\n",
       "/etc/pgbust/pgbust.yaml:2:19: error: redis.sentinel needs 'master: NAME' (the name the "
       "sentinels monitor the master by)"},
      {"rules: r\nredis: {sentinel: {master: m}}\n",
       "/etc/pgbust/pgbust.yaml:2:19: error: redis.sentinel needs 'addresses: [host:port, ...]' "
       "(the sentinels)"},
      {"rules: r\nredis: {sentinel: {master: m, addresses: []}}\n",
       "/etc/pgbust/pgbust.yaml:2:42: error: redis.sentinel.addresses must list at least one "
       "sentinel (host:port)"},
      {"rules: r\nredis: {sentinel: {master: m, addresses: [\"h:1\", h]}}\n",
       "/etc/pgbust/pgbust.yaml:2:50: error: redis.sentinel.addresses: 'h' is not host:port (an "
       "IPv6 address as [addr]:port)"},
      {"rules: r\nredis: {sentinel: {master: m, addresses: [\"h:99999\"]}}\n",
       "/etc/pgbust/pgbust.yaml:2:43: error: redis.sentinel.addresses: 'h:99999' is not host:port "
       "(an IPv6 address as [addr]:port)"},
      {"rules: r\nredis: {sentinel: {master: m, addresses: [\"h:1\"], port: 1}}\n",
       "/etc/pgbust/pgbust.yaml:2:51: error: unknown key 'port' in redis.sentinel; expected one "
       "of: master, addresses, user, password_file, tls"},
      {"rules: r\nredis:\n  - {cluster: true, sentinel: {master: m, addresses: [\"h:1\"]}}\n",
       "/etc/pgbust/pgbust.yaml:3:31: error: redis[1].sentinel: a Sentinel-managed master is not "
       "a Redis Cluster; drop redis[1].cluster or the +cluster URL"},
      {"rules: r\nredis: {url: \"unix:///r.sock\", sentinel: {master: m, addresses: [\"h:1\"]}}\n",
       "/etc/pgbust/pgbust.yaml:2:42: error: redis.sentinel: the sentinels name a TCP master; "
       "redis.url must be redis:// or rediss:// (for the user, password and db; its host:port is "
       "replaced by the master's)"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto p = problems_of(c.text);
    REQUIRE(p.size() == 1);
    CHECK(p[0] == c.expected);
  }
}
