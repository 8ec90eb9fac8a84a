// A throwaway Redis Cluster for integration tests and benchmarks: N masters (+ replicas) made
// with `redis-server --cluster-enabled yes` on free loopback ports and `redis-cli --cluster
// create`, and a small cluster-aware client (slot map, MOVED/ASK) for setting and checking
// keys, resharding a slot by hand and failing masters over.
#pragma once

#include <hiredis/hiredis.h>

#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

namespace pgbust::test {

class RedisCluster {
 public:
  struct ReplyFree {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
  };
  using Reply = std::unique_ptr<redisReply, ReplyFree>;

  // `masters` masters with `replicas` replicas each; cluster-node-timeout `node_timeout_ms`
  // (how soon a crashed master is failed over).
  explicit RedisCluster(int n_masters = 3, int replicas = 1, int node_timeout_ms = 2000) {
    RedisOptions o;
    o.extra_args = {"--cluster-enabled",      "yes",
                    "--cluster-config-file",  "nodes.conf",
                    "--cluster-node-timeout", std::to_string(node_timeout_ms)};
    o.cluster_bus = true;
    const int n = n_masters * (1 + replicas);
    for (int i = 0; i < n; ++i) nodes_.push_back(std::make_unique<Redis>(o));
    std::vector<std::string> argv{"redis-cli", "--cluster", "create"};
    for (auto& r : nodes_) argv.push_back("127.0.0.1:" + std::to_string(r->port()));
    argv.insert(argv.end(), {"--cluster-replicas", std::to_string(replicas), "--cluster-yes"});
    auto res = run(argv);
    if (res.exit_code != 0)
      throw std::runtime_error("redis-cli --cluster create failed: " + res.output);
    if (!eventually([&] { return masters().size() == static_cast<std::size_t>(n_masters); }, 30s))
      throw std::runtime_error("the replicas did not attach: " + res.output);
    wait_ok();
  }

  std::size_t size() const { return nodes_.size(); }
  Redis& node(std::size_t i) { return *nodes_[i]; }
  int port(std::size_t i) const { return nodes_[i]->port(); }
  // redis+cluster://127.0.0.1:P0,127.0.0.1:P1 (two seeds)
  std::string url() const {
    return "redis+cluster://127.0.0.1:" + std::to_string(port(0)) +
           ",127.0.0.1:" + std::to_string(port(1));
  }

  // A command on node i; nullptr when it cannot be reached.
  Reply command(std::size_t i, const std::vector<std::string>& argv) {
    if (i >= size() || dead_.count(i)) return nullptr;
    redisContext*& c = conns_[i];
    if (!c) {
      timeval tv{2, 0};
      c = redisConnectWithTimeout("127.0.0.1", port(i), tv);
      if (!c || c->err) {
        if (c) redisFree(c);
        c = nullptr;
        return nullptr;
      }
      redisSetTimeout(c, tv);
    }
    std::vector<const char*> args;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lens.data()));
    if (!r) {
      redisFree(c);
      c = nullptr;
    }
    return Reply(r);
  }
  static std::string text(const redisReply* r) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
                 r->type == REDIS_REPLY_ERROR)
               ? std::string(r->str, r->len)
               : "";
  }

  bool is_master(std::size_t i) {
    auto r = command(i, {"ROLE"});
    return r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && text(r->element[0]) == "master";
  }
  std::vector<std::size_t> masters() {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < size(); ++i)
      if (is_master(i)) out.push_back(i);
    return out;
  }
  std::size_t index_of_port(int p) const {
    for (std::size_t i = 0; i < size(); ++i)
      if (port(i) == p) return i;
    throw std::runtime_error("no node on port " + std::to_string(p));
  }

  // Every live node says cluster_state:ok and agrees that every slot is served (by a node
  // that says it is a master).
  void wait_ok(std::chrono::milliseconds timeout = 30s) {
    std::string last;
    bool ok = eventually(
        [&] {
          for (std::size_t i = 0; i < size(); ++i) {
            if (dead_.count(i)) continue;
            auto r = command(i, {"CLUSTER", "INFO"});
            last = text(r.get());
            if (last.find("cluster_state:ok") == std::string::npos) return false;
          }
          refresh_map();
          for (int owner : slot_owner_)
            if (owner < 0 || !is_master(static_cast<std::size_t>(owner))) return false;
          return true;
        },
        timeout);
    if (!ok) throw std::runtime_error("the cluster did not reach cluster_state:ok: " + last);
  }

  // The slot map from a live node's CLUSTER SLOTS.
  void refresh_map() {
    slot_owner_.assign(16384, -1);
    for (std::size_t i = 0; i < size(); ++i) {
      auto r = command(i, {"CLUSTER", "SLOTS"});
      if (!r || r->type != REDIS_REPLY_ARRAY) continue;
      for (std::size_t k = 0; k < r->elements; ++k) {
        const redisReply* range = r->element[k];
        const int p = static_cast<int>(range->element[2]->element[1]->integer);
        for (long long s = range->element[0]->integer; s <= range->element[1]->integer; ++s)
          slot_owner_[static_cast<std::size_t>(s)] = static_cast<int>(index_of_port(p));
      }
      return;
    }
  }
  int owner(std::uint16_t slot) {
    if (slot_owner_.empty()) refresh_map();
    return slot_owner_[slot];
  }

  // The server's own CLUSTER KEYSLOT (cached): the fixture does not trust the code under test.
  std::uint16_t slot_of(const std::string& key) {
    auto it = slots_.find(key);
    if (it != slots_.end()) return it->second;
    for (std::size_t i = 0; i < size(); ++i) {
      auto r = command(i, {"CLUSTER", "KEYSLOT", key});
      if (r && r->type == REDIS_REPLY_INTEGER)
        return slots_[key] = static_cast<std::uint16_t>(r->integer);
    }
    throw std::runtime_error("no node answers CLUSTER KEYSLOT");
  }

  // A keyed command routed by slot, following MOVED and ASK like a cluster client.
  Reply keyed(const std::string& key, const std::vector<std::string>& argv) {
    std::size_t at = static_cast<std::size_t>(owner(slot_of(key)));
    bool asking = false;
    for (int hop = 0; hop < 10; ++hop) {
      if (asking) command(at, {"ASKING"});
      Reply r = command(at, argv);
      asking = false;
      const std::string t = r && r->type == REDIS_REPLY_ERROR ? text(r.get()) : "";
      if (t.starts_with("MOVED") || t.starts_with("ASK")) {
        at = index_of_port(std::stoi(t.substr(t.rfind(':') + 1)));
        asking = t.starts_with("ASK");
        if (!asking) refresh_map();
        continue;
      }
      if (!r || t.starts_with("CLUSTERDOWN") || t.starts_with("TRYAGAIN")) {
        std::this_thread::sleep_for(50ms);  // a failover under way
        refresh_map();
        at = static_cast<std::size_t>(owner(slot_of(key)));
        continue;
      }
      if (r->type == REDIS_REPLY_ERROR) throw std::runtime_error(key + ": " + t);
      return r;
    }
    throw std::runtime_error("no node serves key " + key);
  }
  void set(const std::string& key, const std::string& value = "cached") {
    keyed(key, {"SET", key, value});
  }
  bool exists(const std::string& key) { return keyed(key, {"EXISTS", key})->integer != 0; }
  std::string get(const std::string& key) { return text(keyed(key, {"GET", key}).get()); }

  // Keys matching `pattern` on every master (sorted).
  std::vector<std::string> keys(const std::string& pattern = "*") {
    std::set<std::string> out;
    for (std::size_t i : masters()) {
      auto r = command(i, {"KEYS", pattern});
      for (std::size_t k = 0; r && k < r->elements; ++k) out.insert(text(r->element[k]));
    }
    return {out.begin(), out.end()};
  }

  // Resharding by hand: the slot marked MIGRATING on its owner and IMPORTING on `to`, and
  // `count` of its keys moved with MIGRATE (a client then meets ASK and TRYAGAIN).
  void begin_migration(std::uint16_t slot, std::size_t to, std::size_t count) {
    const auto from = static_cast<std::size_t>(owner(slot));
    const std::string s = std::to_string(slot);
    expect_ok(command(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", node_id(from)}));
    expect_ok(command(from, {"CLUSTER", "SETSLOT", s, "MIGRATING", node_id(to)}));
    migrate_keys(slot, from, to, count);
  }
  // The rest of the slot's keys moved and the slot given to `to` on every master (clients
  // with the old map then meet MOVED).
  void finish_migration(std::uint16_t slot, std::size_t from, std::size_t to) {
    migrate_keys(slot, from, to, 1000000);
    const std::string s = std::to_string(slot);
    expect_ok(command(to, {"CLUSTER", "SETSLOT", s, "NODE", node_id(to)}));
    expect_ok(command(from, {"CLUSTER", "SETSLOT", s, "NODE", node_id(to)}));
    for (std::size_t m : masters())
      if (m != to && m != from) command(m, {"CLUSTER", "SETSLOT", s, "NODE", node_id(to)});
    wait_ok();
  }

  // A replica of master `m`.
  std::size_t replica_of(std::size_t m) {
    for (std::size_t i = 0; i < size(); ++i) {
      if (i == m || dead_.count(i)) continue;
      auto r = command(i, {"ROLE"});
      if (r && r->elements >= 3 && text(r->element[0]) == "slave" &&
          static_cast<int>(r->element[2]->integer) == port(m))
        return i;
    }
    throw std::runtime_error("master on port " + std::to_string(port(m)) + " has no replica");
  }
  // CLUSTER FAILOVER on a replica of `m`: it becomes master (m a replica) once it caught up.
  std::size_t failover(std::size_t m) {
    std::size_t r = replica_of(m);
    expect_ok(command(r, {"CLUSTER", "FAILOVER"}));
    if (!eventually([&] { return is_master(r) && !is_master(m); }, 30s))
      throw std::runtime_error("CLUSTER FAILOVER did not promote port " + std::to_string(port(r)));
    wait_ok();
    return r;
  }
  // SIGKILL of master `m`; returns once a replica serves its slots.
  std::size_t crash(std::size_t m) {
    std::size_t r = replica_of(m);
    redisFree(conns_[m]);
    conns_[m] = nullptr;
    dead_.insert(m);
    nodes_[m]->kill();
    if (!eventually([&] { return is_master(r); }, 30s))
      throw std::runtime_error("no replica took over from port " + std::to_string(port(m)));
    wait_ok();
    return r;
  }

  std::string logs() {
    std::string out;
    for (std::size_t i = 0; i < size(); ++i) {
      std::string l = nodes_[i]->log();
      out += "--- redis 127.0.0.1:" + std::to_string(port(i)) + "\n" +
             (l.size() > 1500 ? l.substr(l.size() - 1500) : l);
    }
    return out;
  }

  ~RedisCluster() {
    for (auto& [i, c] : conns_)
      if (c) redisFree(c);
  }

 private:
  std::string node_id(std::size_t i) { return text(command(i, {"CLUSTER", "MYID"}).get()); }
  static void expect_ok(const Reply& r) {
    if (!r || r->type == REDIS_REPLY_ERROR)
      throw std::runtime_error("cluster command failed: " + (r ? text(r.get()) : "no reply"));
  }
  void migrate_keys(std::uint16_t slot, std::size_t from, std::size_t to, std::size_t count) {
    auto keys =
        command(from, {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), std::to_string(count)});
    if (!keys || keys->elements == 0) return;
    std::vector<std::string> argv{"MIGRATE", "127.0.0.1", std::to_string(port(to)), "", "0",
                                  "5000",    "KEYS"};
    for (std::size_t k = 0; k < keys->elements; ++k) argv.push_back(text(keys->element[k]));
    expect_ok(command(from, argv));
  }

  std::vector<std::unique_ptr<Redis>> nodes_;
  std::map<std::size_t, redisContext*> conns_;
  std::set<std::size_t> dead_;
  std::vector<int> slot_owner_;
  std::map<std::string, std::uint16_t> slots_;
};

}  // namespace pgbust::test
