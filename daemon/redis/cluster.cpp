// Redis Cluster: hash slots, topology discovery, and the applier that splits each batch per
// master (one Target per node) and follows MOVED / ASK / TRYAGAIN / CLUSTERDOWN.
#include "pgbust/redis/cluster.hpp"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/sentinel.hpp"

namespace pgbust::redis {

// --- hash slots ----------------------------------------------------------------------------

namespace {

// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection.
constexpr std::array<std::uint16_t, 256> make_crc_table() {
  std::array<std::uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    auto c = static_cast<std::uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b)
      c = static_cast<std::uint16_t>((c & 0x8000) ? (c << 1) ^ 0x1021 : (c << 1));
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

}  // namespace

std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (char ch : data)
    crc = static_cast<std::uint16_t>(
        (crc << 8) ^ kCrcTable[((crc >> 8) ^ static_cast<unsigned char>(ch)) & 0xff]);
  return crc;
}

std::uint16_t key_slot(std::string_view key) {
  auto open = key.find('{');
  if (open != std::string_view::npos) {
    auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1)
      key = key.substr(open + 1, close - open - 1);
  }
  return static_cast<std::uint16_t>(crc16(key) & (kSlots - 1));
}

bool is_redirection(std::string_view error) {
  const std::string_view code = error.substr(0, error.find(' '));
  return code == "MOVED" || code == "ASK" || code == "TRYAGAIN" || code == "CLUSTERDOWN";
}

std::string Topology::Node::addr() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

std::size_t Topology::covered() const {
  return static_cast<std::size_t>(
      std::count_if(slot.begin(), slot.end(), [](auto s) { return s >= 0; }));
}

// --- topology replies ----------------------------------------------------------------------

namespace detail {

namespace {

[[noreturn]] void bad_reply(const std::string& what) {
  throw Error("unexpected CLUSTER reply: " + what);
}

std::string_view str(const redisReply* r) {
  if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)
    bad_reply("expected a string");
  return {r->str, r->len};
}

long long integer(const redisReply* r) {
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  std::string s(str(r));
  try {
    return std::stoll(s);
  } catch (const std::exception&) {
    bad_reply("expected an integer, got '" + s + "'");
  }
}

const redisReply* array(const redisReply* r, const char* what) {
  if (r->type != REDIS_REPLY_ARRAY) bad_reply(std::string(what) + " is not an array");
  return r;
}

// A RESP2 map (a flat array of name, value): the value of `name` or nullptr.
const redisReply* field(const redisReply* map, std::string_view name) {
  array(map, "a map");
  for (std::size_t i = 0; i + 1 < map->elements; i += 2)
    if (map->element[i]->type == REDIS_REPLY_STRING && str(map->element[i]) == name)
      return map->element[i + 1];
  return nullptr;
}

std::int16_t add_master(Topology& t, Topology::Node n) {
  for (std::size_t i = 0; i < t.masters.size(); ++i)
    if (t.masters[i].addr() == n.addr()) return static_cast<std::int16_t>(i);
  t.masters.push_back(std::move(n));
  return static_cast<std::int16_t>(t.masters.size() - 1);
}

void assign(Topology& t, long long first, long long last, std::int16_t master) {
  if (first < 0 || last >= static_cast<long long>(kSlots) || first > last)
    bad_reply("slot range " + std::to_string(first) + "-" + std::to_string(last));
  for (long long s = first; s <= last; ++s) t.slot[static_cast<std::size_t>(s)] = master;
}

}  // namespace

Topology parse_cluster_shards(const redisReply* reply, bool tls, const std::string& host) {
  Topology t;
  array(reply, "CLUSTER SHARDS");
  for (std::size_t i = 0; i < reply->elements; ++i) {
    const redisReply* shard = reply->element[i];
    const redisReply* slots = field(shard, "slots");
    const redisReply* nodes = field(shard, "nodes");
    if (!slots || !nodes) bad_reply("a shard without slots or nodes");
    array(slots, "slots");
    array(nodes, "nodes");
    std::optional<Topology::Node> master;
    bool master_online = false;
    for (std::size_t j = 0; j < nodes->elements; ++j) {
      const redisReply* n = nodes->element[j];
      Topology::Node node;
      const redisReply* ip = field(n, "endpoint");
      if (!ip || str(ip).empty() || str(ip) == "?") ip = field(n, "ip");
      node.host = ip && !str(ip).empty() && str(ip) != "?" ? std::string(str(ip)) : host;
      const redisReply* port =
          tls && field(n, "tls-port") ? field(n, "tls-port") : field(n, "port");
      if (!port) bad_reply("a node without a port");
      node.port = static_cast<int>(integer(port));
      const redisReply* role = field(n, "role");
      const redisReply* health = field(n, "health");
      const bool online = !health || str(health) == "online";
      if (role && str(role) == "master" && (!master || (online && !master_online))) {
        if (master) t.replicas.push_back(*master);
        master = node;
        master_online = online;
      } else {
        t.replicas.push_back(node);
      }
    }
    if (!master) continue;
    if (slots->elements == 0) {  // a shard serving nothing: a node to ask, no more
      t.replicas.push_back(*master);
      continue;
    }
    const std::int16_t m = add_master(t, *master);
    for (std::size_t k = 0; k + 1 < slots->elements; k += 2)
      assign(t, integer(slots->element[k]), integer(slots->element[k + 1]), m);
  }
  return t;
}

Topology parse_cluster_slots(const redisReply* reply, const std::string& host) {
  Topology t;
  array(reply, "CLUSTER SLOTS");
  for (std::size_t i = 0; i < reply->elements; ++i) {
    const redisReply* range = array(reply->element[i], "a slot range");
    if (range->elements < 3) bad_reply("a slot range without a node");
    auto node_at = [&](std::size_t k) {
      const redisReply* n = array(range->element[k], "a node");
      if (n->elements < 2) bad_reply("a node without ip and port");
      Topology::Node node;
      std::string_view ip = str(n->element[0]);
      node.host = ip.empty() || ip == "?" ? host : std::string(ip);
      node.port = static_cast<int>(integer(n->element[1]));
      return node;
    };
    const std::int16_t m = add_master(t, node_at(2));
    assign(t, integer(range->element[0]), integer(range->element[1]), m);
    for (std::size_t k = 3; k < range->elements; ++k) t.replicas.push_back(node_at(k));
  }
  return t;
}

bool is_cluster_url(std::string_view url) {
  return url.starts_with("redis+cluster://") || url.starts_with("rediss+cluster://");
}

std::vector<Endpoint> cluster_seeds(const Options& options) {
  std::vector<std::string> urls;
  const std::string& url = options.url;
  if (is_cluster_url(url)) {
    const std::string scheme = url.substr(0, url.find('+')) + "://";
    std::string rest = url.substr(url.find("://") + 3);
    auto at = rest.rfind('@');
    const std::string userinfo = at == std::string::npos ? "" : rest.substr(0, at + 1);
    std::string hosts = at == std::string::npos ? rest : rest.substr(at + 1);
    const auto slash = hosts.find('/');
    const std::string path = slash == std::string::npos ? "" : hosts.substr(slash);
    hosts = hosts.substr(0, slash);
    for (std::size_t b = 0; b <= hosts.size();) {
      auto e = std::min(hosts.find(',', b), hosts.size());
      if (e == b)
        throw Error("redis URL '" + mask_url(url) +
                    "': expected a comma-separated list of host:port seed nodes");
      urls.push_back(scheme + userinfo + hosts.substr(b, e - b) + path);
      b = e + 1;
    }
  } else {
    urls.push_back(url);
  }
  std::vector<Endpoint> seeds;
  for (const auto& u : urls) {
    Options o = options;
    o.url = u;
    Endpoint ep = resolve_endpoint(o);
    if (ep.unix_socket)
      throw Error("redis URL '" + mask_url(url) +
                  "': a Redis Cluster is reached over TCP (host:port seed nodes), not a unix "
                  "socket");
    if (ep.db != 0)
      throw Error("redis URL '" + mask_url(url) + "': db " + std::to_string(ep.db) +
                  " requested, but a Redis Cluster has only db 0 (SELECT is refused); drop the "
                  "/" +
                  std::to_string(ep.db));
    seeds.push_back(std::move(ep));
  }
  return seeds;
}

}  // namespace detail

// --- the cluster applier -------------------------------------------------------------------

namespace {

constexpr auto kHealthCheck = std::chrono::milliseconds(250);
constexpr auto kRefreshWhileDegraded = std::chrono::milliseconds(500);
constexpr auto kRefreshPeriod = std::chrono::seconds(5);
constexpr int kDirectHops = 4;  // redirections followed at once; then with backoff

std::pair<std::string, int> split_addr(std::string_view addr) {
  auto colon = addr.rfind(':');
  std::string host(addr.substr(0, colon));
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(std::string(addr.substr(colon + 1)));
  } catch (const std::exception&) {
  }
  return {host, port};
}

Clock::duration backoff(int hops) {
  auto d = std::chrono::milliseconds(25) * (1 << std::min(hops, 6));
  return std::min<Clock::duration>(d, std::chrono::seconds(1));
}

// What is true now of the masters (each runs its own keyspace passes): summed, except the
// patterns of a pass and SCAN COUNT, where the largest is shown.
void add_now(Stats& to, const Stats& s) {
  to.failing_batches += s.failing_batches;
  to.pass_running = to.pass_running || s.pass_running;
  to.pass_scanned += s.pass_scanned;
  to.pass_dbsize += s.pass_dbsize;
  to.pass_patterns = std::max(to.pass_patterns, s.pass_patterns);
  to.scan_count = std::max(to.scan_count, s.scan_count);
}

}  // namespace

struct ClusterTarget::Impl {
  struct Node {
    std::unique_ptr<Target> target;
    bool master = false;
  };
  struct CBatch {
    Batch batch;
    std::function<void()> done;
    int phase = 0;  // 0: waits for the map; 1 deletes and patterns; 2 bumps; 3 publishes;
                    // 4 stream entries (XADD)
    std::size_t outstanding = 0;
  };
  struct Part {
    std::uint64_t batch;
    std::string node;
    Batch work;
    PartFlags flags;
    int hops = 0;
  };
  struct Later {  // work routed again by the map once due (TRYAGAIN, CLUSTERDOWN, no owner)
    std::uint64_t batch;
    Batch work;
    int hops;
    TimePoint due;
  };

  Options opt;
  std::vector<Endpoint> seeds;
  Loop* loop = nullptr;
  bool closed = false;
  std::map<std::string, Node> nodes;               // by "host:port"
  std::vector<std::unique_ptr<Target>> graveyard;  // out of the loop, destroyed next round
  Topology topo;
  bool have_map = false;
  std::optional<Topology> fresh;  // discovered, applied on the next timer (not inside a reply)
  bool querying = false;
  TimePoint refresh_at{};  // first discovery at once
  TimePoint last_refresh{};
  TimePoint next_check{};
  std::uint64_t refreshes = 0;
  std::string error;  // the latest discovery failure
  std::map<std::uint64_t, CBatch> batches;
  std::uint64_t next_batch = 1;
  std::map<std::uint64_t, Part> parts;
  std::uint64_t next_part = 1;
  std::vector<Later> later;
  std::deque<std::function<void()>> completions;
  Stats closed_stats;
  mutable Stats total;
  std::function<void(double)> on_pass;  // every node's keyspace passes

  explicit Impl(Options o) : opt(std::move(o)), seeds(detail::cluster_seeds(opt)) {}

  std::string seed_list() const {
    std::string s;
    for (const auto& e : seeds) s += (s.empty() ? "" : ",") + Topology::Node{e.host, e.port}.addr();
    return s;
  }

  // --- nodes -----------------------------------------------------------------------------

  Node& node(const std::string& addr) {
    auto it = nodes.find(addr);
    if (it != nodes.end()) return it->second;
    Endpoint ep = seeds.front();
    std::tie(ep.host, ep.port) = split_addr(addr);
    Node& n = nodes[addr];
    n.target = std::make_unique<Target>(opt, ep);
    n.target->on_redirect([this](const Redirected& r) { return redirected(r); });
    if (on_pass) n.target->on_pass(on_pass);
    if (loop) loop->add(n.target.get());
    return n;
  }

  void drop_node(std::map<std::string, Node>::iterator it) {
    Target* t = it->second.target.get();
    add_counters(closed_stats, t->stats());
    if (loop) loop->remove(t);
    t->close();
    graveyard.push_back(std::move(it->second.target));
    const std::string addr = it->first;
    nodes.erase(it);
    // Its unfinished parts: applied again where their keys are served now.
    std::vector<std::uint64_t> mine;
    for (const auto& [id, p] : parts)
      if (p.node == addr) mine.push_back(id);
    for (auto id : mine) {
      Part p = std::move(parts[id]);
      parts.erase(id);
      --batches[p.batch].outstanding;
      route(p.batch, std::move(p.work), p.hops);
    }
  }

  // --- routing ---------------------------------------------------------------------------

  void submit(std::uint64_t b, const std::string& addr, Batch work, PartFlags flags, int hops) {
    const std::uint64_t id = next_part++;
    flags.tag = id;
    ++batches[b].outstanding;
    Target& t = *node(addr).target;
    parts[id] = Part{b, addr, work, flags, hops};
    t.apply(
        std::move(work), [this, id] { part_done(id); }, flags);
  }

  void defer(std::uint64_t b, Batch work, int hops, TimePoint now) {
    ++batches[b].outstanding;
    later.push_back({b, std::move(work), hops, now + backoff(hops)});
  }

  // Splits `work` by the map: keys to the master of their slot (sorted by slot, so UNLINK
  // chunks stay in one slot), patterns to every master, publishes to one.
  void route(std::uint64_t b, Batch work, int hops, bool single_keys = false) {
    const TimePoint now = Clock::now();
    if (!have_map || topo.masters.empty()) {
      defer(b, std::move(work), hops, now);
      return;
    }
    std::map<int, Batch> per;
    Batch orphans;
    auto by_slot = [](std::vector<std::string>& keys) {
      std::stable_sort(keys.begin(), keys.end(), [](const std::string& x, const std::string& y) {
        return key_slot(x) < key_slot(y);
      });
    };
    by_slot(work.deletes);
    by_slot(work.bumps);
    for (auto& k : work.deletes) {
      const int m = topo.slot[key_slot(k)];
      (m < 0 ? orphans : per[m]).deletes.push_back(std::move(k));
    }
    for (auto& k : work.bumps) {
      const int m = topo.slot[key_slot(k)];
      (m < 0 ? orphans : per[m]).bumps.push_back(std::move(k));
    }
    if (!work.patterns.empty())
      for (std::size_t m = 0; m < topo.masters.size(); ++m)
        per[static_cast<int>(m)].patterns = work.patterns;
    if (!work.publishes.empty()) per[publisher()].publishes = std::move(work.publishes);
    for (auto& s : work.streams) {  // XADD: the master of the stream key's slot
      const int m = topo.slot[key_slot(s.first)];
      (m < 0 ? orphans : per[m]).streams.push_back(std::move(s));
    }
    for (auto& [m, part] : per)
      submit(b, topo.masters[static_cast<std::size_t>(m)].addr(), std::move(part),
             PartFlags{false, single_keys, 0}, hops);
    if (!orphans.empty()) {
      refresh_soon(now);
      defer(b, std::move(orphans), hops + 1, now);
    }
  }

  int publisher() const {  // PUBLISH reaches every node of the cluster: any ready master
    for (std::size_t m = 0; m < topo.masters.size(); ++m) {
      auto it = nodes.find(topo.masters[m].addr());
      if (it != nodes.end() && it->second.target->state() == State::Ready)
        return static_cast<int>(m);
    }
    return 0;
  }

  // A node answered MOVED / ASK / TRYAGAIN / CLUSTERDOWN: its keys are taken over here.
  bool redirected(const Redirected& r) {
    if (closed) return false;
    auto pit = parts.find(r.tag);
    if (pit == parts.end()) return false;
    const std::uint64_t b = pit->second.batch;
    const int hops = pit->second.hops + 1;
    const bool single = pit->second.flags.single_keys;
    const TimePoint now = Clock::now();
    Batch work;
    if (r.what == Redirected::Stream) {
      if (r.keys.size() != 2) return false;
      work.streams.emplace_back(r.keys[0], r.keys[1]);
    } else {
      (r.what == Redirected::Delete ? work.deletes : work.bumps) = r.keys;
    }
    const std::string_view code = r.error.substr(0, r.error.find(' '));
    spdlog::debug("redis cluster: {} for {} key(s); following it", r.error, r.keys.size());
    if (code == "MOVED" || code == "ASK") {
      // "MOVED <slot> <host>:<port>"
      auto rest = r.error.substr(code.size() + 1);
      auto sp = rest.find(' ');
      if (sp == std::string_view::npos) return false;
      const std::string addr(rest.substr(sp + 1));
      long slot = -1;
      try {
        slot = std::stol(std::string(rest.substr(0, sp)));
      } catch (const std::exception&) {
        return false;
      }
      if (slot < 0 || slot >= static_cast<long>(kSlots)) return false;
      if (code == "MOVED") {
        auto [host, port] = split_addr(addr);
        topo.slot[static_cast<std::size_t>(slot)] =
            static_cast<std::int16_t>(master_index(Topology::Node{host, port}));
        node(addr).master = true;
        refresh_soon(now);
      }
      if (hops > kDirectHops) {
        defer(b, std::move(work), hops, now);
      } else {
        submit(b, addr, std::move(work), PartFlags{code == "ASK", code == "ASK" || single, 0},
               hops);
      }
      return true;
    }
    if (code == "CLUSTERDOWN") refresh_soon(now);
    defer(b, std::move(work), hops, now);  // TRYAGAIN, CLUSTERDOWN: again after a pause
    return true;
  }

  std::size_t master_index(const Topology::Node& n) {
    for (std::size_t i = 0; i < topo.masters.size(); ++i)
      if (topo.masters[i].addr() == n.addr()) return i;
    topo.masters.push_back(n);
    return topo.masters.size() - 1;
  }

  // --- batches -----------------------------------------------------------------------------

  void part_done(std::uint64_t id) {
    if (closed) return;
    auto it = parts.find(id);
    if (it == parts.end()) return;
    const std::uint64_t b = it->second.batch;
    parts.erase(it);
    if (--batches[b].outstanding == 0) advance(b);
  }

  // Starts the batch's next phase that has work; queues done() after the last.
  void advance(std::uint64_t b) {
    CBatch& cb = batches[b];
    while (cb.outstanding == 0) {
      ++cb.phase;
      Batch work;
      if (cb.phase == 1) {
        work.deletes = cb.batch.deletes;
        work.patterns = cb.batch.patterns;
      } else if (cb.phase == 2) {
        work.bumps = cb.batch.bumps;
      } else if (cb.phase == 3) {
        work.publishes = cb.batch.publishes;
      } else if (cb.phase == 4) {
        work.streams = cb.batch.streams;
      } else {
        completions.push_back(std::move(cb.done));
        batches.erase(b);
        return;
      }
      if (!work.empty()) route(b, std::move(work), 0, false);
    }
  }

  // --- discovery ---------------------------------------------------------------------------

  void refresh_soon(TimePoint now) {
    refresh_at = std::min(refresh_at, std::max(now, last_refresh + std::chrono::milliseconds(100)));
  }

  Target* ready_node() {
    Target* any = nullptr;
    for (auto& [addr, n] : nodes) {
      if (n.target->state() != State::Ready) continue;
      if (n.master) return n.target.get();
      any = n.target.get();
    }
    return any;
  }

  // With no node ready, connect to the seeds and every replica known, to ask them.
  void add_probes() {
    for (const auto& e : seeds) node(Topology::Node{e.host, e.port}.addr());
    for (const auto& r : topo.replicas) node(r.addr());
  }

  void discover(TimePoint now) {
    Target* t = ready_node();
    if (!t) {
      add_probes();
      refresh_at = now + kRefreshWhileDegraded;
      return;
    }
    querying = true;
    last_refresh = now;
    refresh_at = now + kRefreshPeriod;
    const std::string host = t->endpoint().host;
    const std::string who = t->describe();
    t->query({"CLUSTER", "SHARDS"}, [this, t, host, who](const redisReply* r) {
      if (closed) return;
      if (r && r->type == REDIS_REPLY_ERROR &&
          std::string_view(r->str, r->len).find("nknown") != std::string_view::npos) {
        t->query({"CLUSTER", "SLOTS"},
                 [this, host, who](const redisReply* r2) { discovered(r2, false, host, who); });
        return;
      }
      discovered(r, true, host, who);
    });
  }

  void discovered(const redisReply* r, bool shards, const std::string& host,
                  const std::string& who) {
    if (closed) return;
    querying = false;
    const TimePoint now = Clock::now();
    std::string what = shards ? "CLUSTER SHARDS" : "CLUSTER SLOTS";
    try {
      if (!r) throw Error("the connection was lost before the reply");
      if (r->type == REDIS_REPLY_ERROR) throw Error(std::string(r->str, r->len));
      fresh = shards ? detail::parse_cluster_shards(r, seeds.front().tls, host)
                     : detail::parse_cluster_slots(r, host);
      if (fresh->masters.empty()) throw Error("no master serves any slot");
      error.clear();
    } catch (const Error& e) {
      fresh.reset();
      error = "redis cluster: " + what + " on " + who + " failed: " + e.what();
      spdlog::warn("{}; asking again", error);
      refresh_at = now + kRefreshWhileDegraded;
    }
  }

  void apply_topology(Topology t) {
    auto describe = [](const Topology& x) {
      std::vector<std::string> addrs;
      for (const auto& m : x.masters) addrs.push_back(m.addr());
      std::sort(addrs.begin(), addrs.end());
      std::string s;
      for (const auto& a : addrs) s += (s.empty() ? "" : ", ") + a;
      return s;
    };
    auto same_owners = [](const Topology& x, const Topology& y) {
      for (std::size_t i = 0; i < kSlots; ++i) {
        if ((x.slot[i] < 0) != (y.slot[i] < 0)) return false;
        if (x.slot[i] >= 0 && x.masters[static_cast<std::size_t>(x.slot[i])].addr() !=
                                  y.masters[static_cast<std::size_t>(y.slot[i])].addr())
          return false;
      }
      return true;
    };
    if (!have_map || !same_owners(t, topo))
      spdlog::info("redis cluster: {} masters ({}), {} of {} slots served", t.masters.size(),
                   describe(t), t.covered(), kSlots);
    topo = std::move(t);
    have_map = true;
    ++refreshes;
    for (const auto& m : topo.masters) node(m.addr()).master = true;
    std::vector<std::string> gone;
    for (auto& entry : nodes) {  // not a structured binding: clang 14 cannot capture one
      const std::string& addr = entry.first;
      const bool serves = std::any_of(topo.masters.begin(), topo.masters.end(),
                                      [&](const Topology::Node& m) { return m.addr() == addr; });
      entry.second.master = serves;
      if (!serves) gone.push_back(addr);
    }
    for (const auto& addr : gone) {
      spdlog::info("redis cluster: {} serves no slots now; closing it", addr);
      drop_node(nodes.find(addr));
    }
    for (auto& [id, cb] : batches)
      if (cb.phase == 0) advance(id);
  }

  // --- timers ------------------------------------------------------------------------------

  void on_timer(TimePoint now) {
    graveyard.clear();  // removed from the loop in an earlier round
    if (closed) return;
    if (fresh) {
      Topology t = std::move(*fresh);
      fresh.reset();
      apply_topology(std::move(t));
    }
    if (now >= next_check) {
      next_check = now + kHealthCheck;
      for (auto& [addr, n] : nodes)
        if (n.master && n.target->state() != State::Ready)
          refresh_at = std::min(refresh_at, last_refresh + kRefreshWhileDegraded);
    }
    if (!querying && now >= refresh_at) discover(now);
    if (have_map) {
      std::vector<Later> due;
      for (auto it = later.begin(); it != later.end();) {
        if (it->due <= now) {
          due.push_back(std::move(*it));
          it = later.erase(it);
        } else {
          ++it;
        }
      }
      for (auto& l : due) {
        --batches[l.batch].outstanding;
        route(l.batch, std::move(l.work), l.hops, true);
        if (batches.count(l.batch) && batches[l.batch].outstanding == 0) advance(l.batch);
      }
    }
    auto done = std::move(completions);
    completions.clear();
    for (auto& d : done)
      if (d) d();
  }

  TimePoint deadline() const {
    if (closed) return graveyard.empty() ? kNever : TimePoint{};
    if (!completions.empty() || fresh || !graveyard.empty()) return TimePoint{};
    TimePoint t = next_check;
    if (!querying) t = std::min(t, refresh_at);
    if (have_map)
      for (const auto& l : later) t = std::min(t, l.due);
    return t;
  }

  State state() const {
    if (closed) return State::Disconnected;
    State worst = State::Ready;
    bool any = false;
    for (const auto& [addr, n] : nodes) {
      if (have_map && !n.master) continue;
      any = true;
      const State s = n.target->state();
      if (s == State::BackingOff || (s != State::Ready && worst == State::Ready)) worst = s;
    }
    if (!have_map) return worst == State::Ready ? State::Connecting : worst;
    return any ? worst : State::Connecting;
  }
};

ClusterTarget::ClusterTarget(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  for (const auto& e : impl_->seeds) impl_->node(Topology::Node{e.host, e.port}.addr());
}

ClusterTarget::~ClusterTarget() {
  close();
}

void ClusterTarget::apply(Batch batch, std::function<void()> done) {
  if (batch.empty()) {  // completes on the next round, even before the map is known
    impl_->completions.push_back(std::move(done));
    return;
  }
  const std::uint64_t id = impl_->next_batch++;
  auto& cb = impl_->batches[id];
  cb.batch = std::move(batch);
  cb.done = std::move(done);
  if (impl_->have_map) impl_->advance(id);  // done() only ever runs from on_timer
}

bool ClusterTarget::idle() const {
  if (!impl_->completions.empty() || !impl_->later.empty()) return false;
  for (const auto& [id, b] : impl_->batches)
    if (b.phase == 0) return false;
  return std::all_of(impl_->nodes.begin(), impl_->nodes.end(),
                     [](const auto& n) { return n.second.target->idle(); });
}

State ClusterTarget::state() const {
  return impl_->state();
}

const Stats& ClusterTarget::stats() const {
  Stats& t = impl_->total;
  t = impl_->closed_stats;
  for (const auto& [addr, n] : impl_->nodes) {
    add_counters(t, n.target->stats());
    add_now(t, n.target->stats());
  }
  return t;
}

std::string ClusterTarget::last_error() const {
  if (!impl_->error.empty()) return impl_->error;
  for (const auto& [addr, n] : impl_->nodes)
    if (auto e = n.target->last_error(); !e.empty() && n.target->state() != State::Ready) return e;
  return "";
}

std::string ClusterTarget::describe() const {
  std::string s = "cluster " + impl_->seed_list();
  if (impl_->seeds.front().tls) s += " over TLS";
  if (impl_->have_map) s += fmt::format(" ({} masters)", impl_->topo.masters.size());
  return s;
}

std::string ClusterTarget::name() const {
  return impl_->opt.name;
}

std::string ClusterTarget::role() const {
  return impl_->have_map ? "cluster" : "";
}

bool ClusterTarget::tls() const {
  return impl_->seeds.front().tls;
}

std::string ClusterTarget::tls_version() const {
  for (const auto& [addr, n] : impl_->nodes)
    if (n.target->state() == State::Ready && !n.target->tls_version().empty())
      return n.target->tls_version();
  return "";
}

std::size_t ClusterTarget::queued() const {
  return impl_->batches.size() + impl_->completions.size();
}

void ClusterTarget::attach(Loop& loop) {
  impl_->loop = &loop;
  loop.add(this);
  for (auto& [addr, n] : impl_->nodes) loop.add(n.target.get());
}

void ClusterTarget::detach(Loop& loop) {
  loop.remove(this);
  for (auto& [addr, n] : impl_->nodes) loop.remove(n.target.get());
  impl_->loop = nullptr;
}

void ClusterTarget::close() noexcept {
  if (!impl_ || impl_->closed) return;
  impl_->closed = true;
  for (auto& [addr, n] : impl_->nodes) n.target->close();
}

void ClusterTarget::on_pass(std::function<void(double seconds)> observe) {
  impl_->on_pass = std::move(observe);
  for (auto& [addr, n] : impl_->nodes) n.target->on_pass(impl_->on_pass);
}

void ClusterTarget::reread_password() {
  for (auto& [addr, n] : impl_->nodes) n.target->reread_password();
}

std::size_t ClusterTarget::masters() const {
  return impl_->have_map ? impl_->topo.masters.size() : 0;
}

std::uint64_t ClusterTarget::refreshes() const {
  return impl_->refreshes;
}

TimePoint ClusterTarget::deadline() const {
  return impl_->deadline();
}

void ClusterTarget::on_timer(TimePoint now) {
  impl_->on_timer(now);
}

std::unique_ptr<AnyTarget> make_target(const Options& options) {
  if (!options.sentinel.master.empty()) return std::make_unique<SentinelTarget>(options);
  if (options.cluster || detail::is_cluster_url(options.url))
    return std::make_unique<ClusterTarget>(options);
  return std::make_unique<Target>(options);
}

}  // namespace pgbust::redis
