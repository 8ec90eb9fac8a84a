// Redis Cluster end to end: the real daemon against a 3-master + 3-replica cluster on
// loopback, with a workload whose keys spread over every master, while a slot is resharded
// (ASK, TRYAGAIN, then MOVED), a master is failed over and another one crashes.
#include <doctest/doctest.h>

#include <cstdlib>

#include "pgbust/pg/libpq.hpp"

#include "e2e.hpp"
#include "pgbust/redis/cluster.hpp"
#include "redis_cluster.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(version: 1
rules:
  - name: items
    table: public.items
    delete: ["item:${id}", "tagged:{t${tag}}:${id}"]
    bump: ["rev:{t${tag}}"]
  - name: groups
    table: public.groups
    delete_pattern: ["search:${id}:*"]
)";

constexpr int kItems = 600;
constexpr int kTags = 20;

struct ClusterE2E {
  RedisCluster cluster;
  E2E env;
  int sentinel = 0;

  explicit ClusterE2E(int node_timeout_ms = 2000) : cluster(3, 1, node_timeout_ms) {
    env.pg.exec(R"(
      CREATE TABLE items (id int PRIMARY KEY, tag int, v int);
      ALTER TABLE items REPLICA IDENTITY FULL;
      CREATE TABLE groups (id int PRIMARY KEY, v int);
      CREATE TABLE sentinel (id int PRIMARY KEY);
      CREATE PUBLICATION pgbust_e2e FOR TABLE items, groups, sentinel;
    )");
    env.pg.exec("INSERT INTO items SELECT g, g % " + std::to_string(kTags) +
                ", 0 FROM generate_series(0, " + std::to_string(kItems - 1) + ") g");
    env.pg.exec("INSERT INTO groups VALUES (1, 0), (2, 0)");
    // PGBUST_TEST_CLUSTER_URL=plain: the daemon gets one node as a plain redis:// URL, as a
    // client without cluster support would (shows what the cluster target fixes).
    const char* style = std::getenv("PGBUST_TEST_CLUSTER_URL");
    const std::string url = style && std::string(style) == "plain"
                                ? "redis://127.0.0.1:" + std::to_string(cluster.port(0))
                                : cluster.url();
    auto rules = env.write_rules(kRules);
    auto config = env.dir.write(
        "pgbust.yaml",
        "postgres: {conninfo: \"" + env.pg.conninfo() + "\"}\n" +
            "sources:\n  logical: {slot: pgbust_e2e, publication: pgbust_e2e, create_slot: "
            "true, status_interval: 1s, state_dir: \"" +
            (env.dir.path() / "state").string() + "\"}\n" + "redis: {url: \"" + url +
            "\", command_timeout: 1s}\n" + "rules: " + rules.string() + "\n" +
            "status: {interval: 1s, listen: \"\"}\n");
    env.run_daemon(config.string());
    env.wait_streaming();
    sync();
  }

  std::string logs() { return env.logs() + "\ncluster logs:\n" + cluster.logs(); }

  // Everything committed before is applied once this sentinel's key is gone.
  void sync(std::chrono::milliseconds timeout = 40s) {
    std::string key = "sentinel:" + std::to_string(++sentinel);
    cluster.set(key);
    env.pg.exec("INSERT INTO sentinel VALUES (" + std::to_string(sentinel) + ")");
    if (!eventually([&] { return !cluster.exists(key); }, timeout))
      FAIL("pgbust did not apply the sentinel; " << logs());
  }

  static std::vector<std::string> keys_of(int id) {
    return {"item:" + std::to_string(id),
            "tagged:{t" + std::to_string(id % kTags) + "}:" + std::to_string(id)};
  }

  // Caches the keys of `ids`, then commits an update of them, 10 rows per transaction.
  std::vector<std::string> round(const std::vector<int>& ids) {
    std::vector<std::string> keys;
    for (int id : ids)
      for (auto& k : keys_of(id)) {
        cluster.set(k);
        keys.push_back(k);
      }
    for (std::size_t i = 0; i < ids.size(); i += 10) {
      std::string list;
      for (std::size_t j = i; j < std::min(ids.size(), i + 10); ++j)
        list += (list.empty() ? "" : ",") + std::to_string(ids[j]);
      env.pg.exec("UPDATE items SET v = v + 1 WHERE id IN (" + list + ")");
    }
    return keys;
  }

  void expect_gone(const std::vector<std::string>& keys, const char* phase) {
    std::vector<std::string> left;
    for (const auto& k : keys)
      if (cluster.exists(k)) left.push_back(k);
    INFO(phase);
    INFO(logs());
    CHECK(left.empty());
    if (!left.empty()) MESSAGE("still cached, e.g. " << left.front() << " (" << left.size() << ")");
  }
};

std::vector<int> range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("pgbust's slot computation agrees with the server's CLUSTER KEYSLOT") {
  RedisCluster cluster(3, 0);
  for (int i = 0; i < 300; ++i) {
    std::string key = i % 3 == 0   ? "key:" + std::to_string(i * 7919)
                      : i % 3 == 1 ? "{user" + std::to_string(i) + "}.following"
                                   : "a{b" + std::to_string(i) + "}c{d}";
    CHECK(pgbust::redis::key_slot(key) == cluster.slot_of(key));
  }
}

TEST_CASE("check --redis against a cluster checks the ACL user on every master") {
  RedisCluster cluster(3, 0);
  TempDir dir;
  auto user = [&](std::size_t node, const std::string& unlink) {
    cluster.command(node, {"ACL", "SETUSER", "app", "reset", "on", ">pw-app", "~*", "&*", unlink,
                           "+scan", "+set", "+incr", "+publish", "+ping", "+client|setname",
                           "+cluster|shards", "+cluster|slots", "+asking", "+acl|dryrun"});
  };
  for (std::size_t i = 0; i < cluster.size(); ++i) user(i, "+unlink");
  dir.write(
      "rules.yaml",
      "version: 1\nrules:\n  - name: users\n    table: users\n    delete: [\"user:${id}\"]\n");
  const std::string config =
      dir.write("pgbust.yaml",
                "rules: rules.yaml\nredis:\n  url: redis+cluster://app:pw-app@127.0.0.1:" +
                    std::to_string(cluster.port(0)) + "\n")
          .string();
  auto r = run({pgbust_binary(), "check", "--config", config, "--redis"});
  CHECK_MESSAGE(r.exit_code == 0, r.output);
  CHECK(r.output.find("cluster of 3 masters") != std::string::npos);
  CHECK(r.output.find("pw-app") == std::string::npos);

  user(2, "-unlink");  // one master configured differently
  r = run({pgbust_binary(), "check", "--config", config, "--redis"});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.output.find("UNLINK") != std::string::npos, r.output);
  CHECK_MESSAGE(
      r.output.find("(on 127.0.0.1:" + std::to_string(cluster.port(2)) + ")") != std::string::npos,
      r.output);
  CHECK(r.output.find("+unlink") != std::string::npos);
  CHECK(r.output.find("pw-app") == std::string::npos);
}

TEST_CASE("cluster: a live workload over every master through a reshard, a failover, a crash") {
  ClusterE2E t;
  RedisCluster& c = t.cluster;
  auto masters = c.masters();
  REQUIRE(masters.size() == 3);
  {  // the workload's keys land on every master
    std::set<int> owners;
    for (int id = 0; id < kItems; ++id)
      for (auto& k : ClusterE2E::keys_of(id)) owners.insert(c.owner(c.slot_of(k)));
    REQUIRE(owners.size() == 3);
  }

  // A: steady state; bumps create the revision counters on their masters.
  auto keys = t.round(range(0, 200));
  t.sync();
  t.expect_gone(keys, "A: steady state");
  CHECK(std::stoll(c.get("rev:{t3}")) > 0);

  // B: slot of {t3} half migrated (MIGRATING/IMPORTING): ASK and TRYAGAIN.
  const std::uint16_t slot = c.slot_of("tagged:{t3}:0");
  const auto from = static_cast<std::size_t>(c.owner(slot));
  const std::size_t to = masters[0] == from ? masters[1] : masters[0];
  std::vector<int> tag3;
  for (int id = 3; id < kItems; id += kTags) tag3.push_back(id);
  for (int id : tag3) c.set(ClusterE2E::keys_of(id)[1]);
  c.begin_migration(slot, to, tag3.size() / 2);
  keys = t.round(range(200, 400));
  auto more = t.round(tag3);
  keys.insert(keys.end(), more.begin(), more.end());
  t.sync();
  t.expect_gone(keys, "B: slot migrating");

  // C: the slot handed over: the daemon's map is stale, so MOVED.
  c.finish_migration(slot, from, to);
  keys = t.round(range(400, 600));
  more = t.round(tag3);
  keys.insert(keys.end(), more.begin(), more.end());
  t.sync();
  t.expect_gone(keys, "C: slot moved");

  // D: a replica promoted by CLUSTER FAILOVER while committed work is in flight.
  keys = t.round(range(0, 300));
  const std::size_t demoted = masters[2];
  c.failover(demoted);
  more = t.round(range(300, 400));
  keys.insert(keys.end(), more.begin(), more.end());
  t.sync();
  t.expect_gone(keys, "D: failover");

  // E: a master crashes (SIGKILL); its replica takes over after the node timeout.
  std::size_t victim = from == demoted ? to : from;
  if (victim == demoted) victim = masters[0] == demoted ? masters[1] : masters[0];
  keys = t.round(range(200, 600));
  c.crash(victim);
  more = t.round(range(0, 200));
  keys.insert(keys.end(), more.begin(), more.end());
  t.sync(60s);
  // Keys cached on the crashed master and not replicated before it died are gone with it.
  t.expect_gone(keys, "E: crash");

  // F: a pattern delete SCANs every master.
  std::set<int> owners;
  for (int n = 0; n < 300; ++n) {
    c.set("search:1:" + std::to_string(n));
    c.set("search:2:" + std::to_string(n));
    owners.insert(c.owner(c.slot_of("search:1:" + std::to_string(n))));
  }
  REQUIRE(owners.size() == 3);
  t.env.pg.exec("UPDATE groups SET v = v + 1 WHERE id = 1");
  t.sync();
  INFO(t.logs());
  CHECK(c.keys("search:1:*").empty());
  CHECK(c.keys("search:2:*").size() == 300);  // another group's keys stay
}

TEST_CASE("cluster: a batch is confirmed only when every master applied its part") {
  ClusterE2E t(60000);  // no failover while a master is paused
  RedisCluster& c = t.cluster;
  const std::size_t paused = c.masters()[0];
  // Rows whose item key is on the paused master, and rows whose keys are elsewhere.
  std::vector<int> on_paused, elsewhere;
  for (int id = 0; id < kItems && (on_paused.size() < 5 || elsewhere.size() < 5); ++id) {
    auto keys = ClusterE2E::keys_of(id);
    bool p = false, o = false;
    for (auto& k : keys) (c.owner(c.slot_of(k)) == static_cast<int>(paused) ? p : o) = true;
    if (p && !o && on_paused.size() < 5) on_paused.push_back(id);
    if (o && !p && elsewhere.size() < 5) elsewhere.push_back(id);
  }
  REQUIRE(on_paused.size() == 5);
  REQUIRE(elsewhere.size() == 5);
  std::vector<std::string> far;
  for (int id : elsewhere)
    for (auto& k : ClusterE2E::keys_of(id)) far.push_back(k), c.set(k);
  for (int id : on_paused)
    for (auto& k : ClusterE2E::keys_of(id)) c.set(k);
  auto lsn_of = [](const std::string& text) {
    std::uint64_t v = 0;
    REQUIRE(pgbust::pg::parse_lsn(text, v));
    return v;
  };
  c.node(paused).pause();
  const auto before = lsn_of(*t.env.pg.scalar("SELECT pg_current_wal_insert_lsn()::text"));
  std::string all;
  for (int id : on_paused) all += std::to_string(id) + ",";
  for (int id : elsewhere) all += std::to_string(id) + ",";
  all.pop_back();
  t.env.pg.exec("UPDATE items SET v = v + 1 WHERE id IN (" + all + ")");  // one transaction
  INFO(t.logs());
  // The other masters applied their part of the batch...
  CHECK(eventually(
      [&] { return std::none_of(far.begin(), far.end(), [&](auto& k) { return c.exists(k); }); }));
  // ...and through two more status intervals nothing past the commit is confirmed.
  const std::string out = t.env.daemon->output();
  auto count = [](const std::string& s) {
    std::size_t n = 0;
    for (auto at = s.find("info: status:"); at != std::string::npos;
         at = s.find("info: status:", at + 1))
      ++n;
    return n;
  };
  const std::size_t seen = count(out);
  CHECK(eventually([&] { return count(t.env.daemon->output()) >= seen + 2; }));
  CHECK(lsn_of(t.env.confirmed_lsn()) <= before);
  c.node(paused).resume();
  t.sync();
  for (int id : on_paused)
    for (auto& k : ClusterE2E::keys_of(id)) CHECK_FALSE(c.exists(k));
  CHECK(eventually([&] { return lsn_of(t.env.confirmed_lsn()) > before; }));
}

TEST_CASE("cluster: each master's keyspace pass UNLINKs one slot at a time and follows MOVED") {
  RedisCluster c(3, 0);
  const std::size_t a = c.masters()[0];
  // DEBUG POPULATE makes keys of every slot on one master, also of slots it does not serve:
  // its pass SCANs pages mixing slots (an UNLINK mixing them is refused CROSSSLOT) and its
  // UNLINKs of the foreign ones are answered MOVED, whose keys go to their masters.
  auto populated = c.command(a, {"DEBUG", "POPULATE", "3000", "pop"});
  REQUIRE(populated);
  REQUIRE(RedisCluster::text(populated.get()) == "OK");
  std::vector<std::string> served, kept;
  for (int i = 0; i < 200; ++i) {
    served.push_back("pop:s" + std::to_string(i));
    kept.push_back("keep:" + std::to_string(i));
    c.set(served.back());
    c.set(kept.back());
  }
  pgbust::Loop loop;
  pgbust::redis::Options o;
  o.url = c.url();
  pgbust::redis::ClusterTarget target(o);
  target.attach(loop);
  pgbust::Batch b;
  b.patterns = {"pop:*"};
  bool done = false;
  target.apply(std::move(b), [&] { done = true; });
  const auto end = std::chrono::steady_clock::now() + 60s;
  while (!done && std::chrono::steady_clock::now() < end) loop.run_once(20ms);
  INFO(c.logs());
  REQUIRE(done);
  const auto& s = target.stats();
  std::string classes;
  for (const auto& [k, v] : s.errors_by_class) classes += k.first + "/" + k.second + " ";
  INFO("errors by class: " << classes);
  CHECK(s.errors == 0);  // no CROSSSLOT: every UNLINK stayed in one slot
  CHECK(s.passes == 3);  // one per master
  for (const auto& k : served) CHECK_FALSE(c.exists(k));
  for (const auto& k : kept) CHECK(c.exists(k));
  // Master a deleted its own slots' keys; the others' were answered MOVED and sent on, so
  // about 2000 of the 3000 were UNLINKed on their masters (where they do not exist).
  CHECK(s.unlinks >= 3000 + served.size());
  auto left = c.command(a, {"KEYS", "pop:*"});
  REQUIRE(left);
  for (std::size_t i = 0; i < left->elements; ++i) {
    const std::string k = RedisCluster::text(left->element[i]);
    CHECK(c.owner(c.slot_of(k)) != static_cast<int>(a));
  }
  // Stream entries are summed over the masters like every other counter (they feed
  // pgbust_redis_stream_entries_total for the cluster target).
  pgbust::Batch with_stream;
  with_stream.streams = {{"inval:{s}", "m"}};
  done = false;
  target.apply(std::move(with_stream), [&] { done = true; });
  const auto end2 = std::chrono::steady_clock::now() + 20s;
  while (!done && std::chrono::steady_clock::now() < end2) loop.run_once(20ms);
  REQUIRE(done);
  CHECK(target.stats().stream_entries == 1);
  target.detach(loop);
  target.close();
}

TEST_CASE("cluster: one entry of a redis list, beside a single node; XADD on the stream's master") {
  RedisCluster c(3, 1, 2000);
  E2E env;
  env.pg.exec("CREATE TABLE items (id int PRIMARY KEY, v int)");
  env.pg.exec("INSERT INTO items SELECT g, 0 FROM generate_series(1, 30) g");
  env.pg.exec("CREATE PUBLICATION pgbust_e2e FOR TABLE items");
  auto rules = env.dir.write("rules.yaml", R"(version: 1
rules:
  - name: items
    table: public.items
    delete: ["item:${id}"]
    stream: "inval:{items}"
)");
  auto config = env.dir.write(
      "pgbust.yaml",
      "postgres: {conninfo: \"" + env.pg.conninfo() + "\"}\n" +
          "sources:\n  logical: {slot: pgbust_e2e, publication: pgbust_e2e, create_slot: "
          "true, status_interval: 1s, state_dir: \"" +
          (env.dir.path() / "state").string() + "\"}\n" + "redis:\n  - {name: cl, url: \"" +
          c.url() + "\", command_timeout: 1s}\n  - {name: single, url: \"" + env.redis.url() +
          "\", command_timeout: 1s}\n" + "rules: " + rules.string() + "\n" +
          "status: {interval: 1s, listen: \"\"}\n");
  env.run_daemon(config.string());
  env.wait_streaming();
  auto logs = [&] { return env.logs() + "\ncluster logs:\n" + c.logs(); };
  INFO(logs());
  for (int id = 1; id <= 30; ++id) {
    c.set("item:" + std::to_string(id));
    env.redis.set("item:" + std::to_string(id), "cached");
  }
  env.pg.exec("UPDATE items SET v = v + 1 WHERE id <= 10");
  env.pg.exec("UPDATE items SET v = v + 1 WHERE id > 10");
  CHECK(eventually([&] {
    for (int id = 1; id <= 30; ++id)
      if (c.exists("item:" + std::to_string(id)) || env.redis.exists("item:" + std::to_string(id)))
        return false;
    return true;
  }));
  // One entry per transaction on each target; on the cluster on the master of its slot.
  CHECK(eventually([&] {
    return c.keyed("inval:{items}", {"XLEN", "inval:{items}"})->integer == 2;
  }));
  CHECK(eventually([&] {
    return env.redis.command({"XLEN", "inval:{items}"}) == std::optional<std::string>("2");
  }));
  // The status line names both targets; the cluster reports its role as "cluster".
  CHECK(eventually([&] {
    const std::string out = env.daemon->output();
    return out.find("redis cl ready") != std::string::npos &&
           out.find("redis single ready") != std::string::npos &&
           out.find("[cluster,") != std::string::npos;
  }));
}
