// Redis Sentinel helpers: sentinel addresses, the master's URL built from the data node's
// settings (the password survives any character), and the failover events read.
#include <doctest/doctest.h>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/sentinel.hpp"
#include "test_support.hpp"

using namespace pgbust::redis;
using pgbust::test::TempDir;

TEST_CASE("sentinel addresses: host:port, [v6]:port; anything else named and refused") {
  CHECK(detail::parse_host_port("10.0.0.1:26379", "x") ==
        std::pair<std::string, int>{"10.0.0.1", 26379});
  CHECK(detail::parse_host_port("[::1]:1", "x") == std::pair<std::string, int>{"::1", 1});
  for (const char* bad : {"h", "h:", ":1", "h:0", "h:65536", "::1:5", "[::1]", "h:1x"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(
        detail::parse_host_port(bad, "redis.sentinel address"),
        doctest::Contains(
            ("redis.sentinel address '" + std::string(bad) + "': expected host:port").c_str()),
        pgbust::Error);
  }
}

TEST_CASE("the master's options keep the password_file, so a rotated password is re-read") {
  TempDir dir;
  auto file = dir.write("redis-password", "first\n");
  Options o;
  o.url = "redis://ignored:1/0";
  o.password_file = file.string();
  o.sentinel.master = "m";
  o.sentinel.addresses = {"127.0.0.1:26379"};
  const Endpoint node = detail::sentinel_data_endpoint(o);
  CHECK(node.password == "first");
  const Options m = detail::master_options(o, node, "127.0.0.1", 6380);
  CHECK(m.password_file == file.string());
  dir.write("redis-password", "second\n");
  CHECK(resolve_endpoint(m).password == "second");
}

TEST_CASE("the master's options: the data node's scheme, user, password and db, its address") {
  Options o;
  o.url = "rediss://app%40x:p%3A%2F%40w@ignored:1/3";
  o.sentinel.master = "m";
  o.sentinel.addresses = {"127.0.0.1:26379"};
  const Endpoint node = detail::sentinel_data_endpoint(o);
  CHECK(node.password == "p:/@w");
  const Options m = detail::master_options(o, node, "::1", 6380);
  CHECK(m.sentinel.master.empty());
  CHECK(m.password_file.empty());
  const Endpoint ep = resolve_endpoint(m);
  CHECK(ep.tls);
  CHECK(ep.host == "::1");
  CHECK(ep.port == 6380);
  CHECK(ep.db == 3);
  CHECK(ep.user == "app@x");
  CHECK(ep.password == "p:/@w");

  o.url = "unix:///run/redis.sock";
  CHECK_THROWS_WITH_AS(detail::sentinel_data_endpoint(o), doctest::Contains("not unix://"),
                       pgbust::Error);
  o.url = "redis+cluster://a:1,b:2";
  CHECK_THROWS_WITH_AS(detail::sentinel_data_endpoint(o), doctest::Contains("not a Redis Cluster"),
                       pgbust::Error);
}

TEST_CASE("sentinel events: +switch-master and +promoted-slave for this master only") {
  using A = std::optional<std::pair<std::string, int>>;
  CHECK(detail::parse_sentinel_event("+switch-master", "m 127.0.0.1 6379 127.0.0.1 6380", "m") ==
        A{{"127.0.0.1", 6380}});
  CHECK(detail::parse_sentinel_event("+switch-master", "other 1.1.1.1 1 2.2.2.2 2", "m") ==
        std::nullopt);
  CHECK(detail::parse_sentinel_event("+promoted-slave",
                                     "slave 10.0.0.2:6380 10.0.0.2 6380 @ m 10.0.0.1 6379",
                                     "m") == A{{"10.0.0.2", 6380}});
  CHECK(detail::parse_sentinel_event("+promoted-slave",
                                     "slave 10.0.0.2:6380 10.0.0.2 6380 @ mm 10.0.0.1 6379",
                                     "m") == std::nullopt);
  CHECK(detail::parse_sentinel_event("+switch-master", "m 1.1.1.1 1 2.2.2.2 x", "m") ==
        std::nullopt);
  CHECK(detail::parse_sentinel_event("+sdown", "master m 127.0.0.1 6379", "m") == std::nullopt);
}

TEST_CASE("sentinel options: master and addresses required, checked as run checks them") {
  Options o;
  CHECK_THROWS_WITH_AS(detail::sentinel_endpoints(o), doctest::Contains("needs 'master: NAME'"),
                       pgbust::Error);
  o.sentinel.master = "m";
  CHECK_THROWS_WITH_AS(detail::sentinel_endpoints(o), doctest::Contains("needs 'addresses"),
                       pgbust::Error);
  o.sentinel.addresses = {"127.0.0.1:26379", "[::1]:26380"};
  o.sentinel.user = "watcher";
  CHECK_THROWS_WITH_AS(detail::sentinel_endpoints(o), doctest::Contains("has no password"),
                       pgbust::Error);
  o.sentinel.user.clear();
  auto eps = detail::sentinel_endpoints(o);
  REQUIRE(eps.size() == 2);
  CHECK(eps[1].host == "::1");
  CHECK(eps[1].port == 26380);
  CHECK_FALSE(eps[0].tls);
  // make_target picks the Sentinel applier and names the master in describe().
  auto t = make_target(o);
  CHECK(t->describe() == "sentinel 'm' master not known yet");
}
