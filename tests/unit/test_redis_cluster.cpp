// Redis Cluster pieces without a server: CRC16 and hash slots (spec values), hash tags, the
// topology replies (CLUSTER SHARDS / CLUSTER SLOTS as RESP bytes) and cluster seed URLs.
#include <doctest/doctest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/cluster.hpp"

using namespace pgbust::redis;

namespace {

// RESP2 builders for reply fixtures.
std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}
std::string num(long long n) {
  return ":" + std::to_string(n) + "\r\n";
}
std::string arr(const std::vector<std::string>& items) {
  std::string s = "*" + std::to_string(items.size()) + "\r\n";
  for (const auto& i : items) s += i;
  return s;
}
detail::Reply parse(const std::string& bytes) {
  detail::Reader r;
  r.feed(bytes);
  auto reply = r.next();
  REQUIRE(reply);
  return reply;
}
std::string shard_node(const std::string& ip, int port, const std::string& role,
                       const std::string& health = "online") {
  return arr({bulk("id"), bulk("abc"), bulk("port"), num(port), bulk("ip"), bulk(ip),
              bulk("endpoint"), bulk(ip), bulk("role"), bulk(role), bulk("replication-offset"),
              num(1), bulk("health"), bulk(health)});
}

}  // namespace

TEST_CASE("CRC16 and hash slots as the cluster spec defines them") {
  CHECK(crc16("123456789") == 0x31C3);  // the spec's check value
  CHECK(crc16("") == 0);
  // CLUSTER KEYSLOT answers (Redis documentation and a real server)
  CHECK(key_slot("somekey") == 11058);
  CHECK(key_slot("foo") == 12182);
  CHECK(key_slot("hello") == 866);
  CHECK(key_slot("user1000") == key_slot("{user1000}.following"));
  CHECK(key_slot("{user1000}.following") == key_slot("{user1000}.followers"));
  // hash tag rules from the spec
  CHECK(key_slot("foo{}{bar}") == (crc16("foo{}{bar}") & 16383));  // empty tag: whole key
  CHECK(key_slot("foo{{bar}}zap") == key_slot("{bar"));            // first '{' to next '}'
  CHECK(key_slot("foo{bar}{zap}") == key_slot("bar"));             // first tag only
  CHECK(key_slot("{") == (crc16("{") & 16383));
  CHECK(key_slot("no}tag{") == (crc16("no}tag{") & 16383));
}

TEST_CASE("redirection errors are told apart from other errors") {
  CHECK(is_redirection("MOVED 3999 127.0.0.1:6381"));
  CHECK(is_redirection("ASK 3999 127.0.0.1:6381"));
  CHECK(is_redirection("TRYAGAIN Multiple keys request during rehashing of slot"));
  CHECK(is_redirection("CLUSTERDOWN The cluster is down"));
  CHECK_FALSE(is_redirection("CROSSSLOT Keys in request don't hash to the same slot"));
  CHECK_FALSE(is_redirection("MOVEDX 1 a:1"));
  CHECK_FALSE(is_redirection("OOM command not allowed"));
}

TEST_CASE("CLUSTER SHARDS: the online master of each shard serves its slot ranges") {
  std::string bytes = arr({
      arr({bulk("slots"), arr({num(0), num(5460), num(10923), num(10925)}), bulk("nodes"),
           arr({shard_node("127.0.0.1", 7000, "master", "fail"),
                shard_node("127.0.0.1", 7003, "master"),
                shard_node("127.0.0.1", 7006, "replica")})}),
      arr({bulk("slots"), arr({num(5461), num(10922)}), bulk("nodes"),
           arr({shard_node("", 7001, "master")})}),
      arr({bulk("slots"), arr({}), bulk("nodes"), arr({shard_node("127.0.0.1", 7009, "master")})}),
  });
  auto r = parse(bytes);
  Topology t = detail::parse_cluster_shards(r.get(), false, "10.0.0.1");
  REQUIRE(t.masters.size() == 2);
  CHECK(t.masters[0].addr() == "127.0.0.1:7003");
  CHECK(t.masters[1].addr() == "10.0.0.1:7001");  // no address given: the node asked
  CHECK(t.slot[0] == 0);
  CHECK(t.slot[5460] == 0);
  CHECK(t.slot[5461] == 1);
  CHECK(t.slot[10922] == 1);
  CHECK(t.slot[10925] == 0);
  CHECK(t.slot[10926] == -1);
  CHECK(t.covered() == 10926);
  CHECK(t.replicas.size() == 3);  // the failed master, the replica, the empty shard's node
}

TEST_CASE("CLUSTER SLOTS: ranges, master first, then replicas") {
  std::string bytes = arr({
      arr({num(0), num(8191), arr({bulk("127.0.0.1"), num(7000), bulk("id0")}),
           arr({bulk("127.0.0.1"), num(7003), bulk("id3")})}),
      arr({num(8192), num(16383), arr({bulk("::1"), num(7001), bulk("id1")})}),
  });
  auto r = parse(bytes);
  Topology t = detail::parse_cluster_slots(r.get(), "127.0.0.1");
  REQUIRE(t.masters.size() == 2);
  CHECK(t.masters[1].addr() == "[::1]:7001");
  CHECK(t.slot[8191] == 0);
  CHECK(t.slot[8192] == 1);
  CHECK(t.covered() == 16384);
  REQUIRE(t.replicas.size() == 1);
  CHECK(t.replicas[0].port == 7003);
  CHECK_THROWS_AS(detail::parse_cluster_slots(
                      parse(arr({arr({num(0), num(99999), arr({bulk("h"), num(1)})})})).get(), "h"),
                  pgbust::Error);
}

TEST_CASE("cluster seed URLs") {
  Options o;
  o.url = "redis+cluster://app:s3cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002";
  auto seeds = detail::cluster_seeds(o);
  REQUIRE(seeds.size() == 3);
  CHECK(seeds[0].host == "10.0.0.1");
  CHECK(seeds[1].port == 7001);
  CHECK(seeds[2].host == "::1");
  CHECK(seeds[2].user == "app");
  CHECK(seeds[2].password == "s3cret");
  CHECK_FALSE(seeds[0].tls);

  o.url = "rediss+cluster://h1:7000/0";
  seeds = detail::cluster_seeds(o);
  REQUIRE(seeds.size() == 1);
  CHECK(seeds[0].tls);

  o.url = "redis://h1:7000";  // redis.cluster: true with a plain URL: one seed
  o.cluster = true;
  CHECK(detail::cluster_seeds(o).size() == 1);
  CHECK(make_target(o)->describe() == "cluster h1:7000");

  o.url = "redis+cluster://app:s3cret@h1:7000,h2:7000/2";
  try {
    detail::cluster_seeds(o);
    FAIL("a db other than 0 was accepted");
  } catch (const pgbust::Error& e) {
    std::string msg = e.what();
    CHECK(msg.find("only db 0") != std::string::npos);
    CHECK(msg.find("s3cret") == std::string::npos);
  }
  o.url = "redis+cluster://h1:7000,,h2:7000";
  CHECK_THROWS_AS(detail::cluster_seeds(o), pgbust::Error);
  o.url = "unix:///tmp/redis.sock";
  CHECK_THROWS_AS(detail::cluster_seeds(o), pgbust::Error);
}
