// `pgbust check --redis`: connect and authenticate exactly as the target does, then ask the
// server whether the ACL user may run each command pgbust sends (ACL DRYRUN on Redis 7,
// harmless probes where DRYRUN is not offered to the user).
#include <hiredis/hiredis.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <optional>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/cluster.hpp"
#include "pgbust/redis/errors.hpp"
#include "pgbust/redis/redis.hpp"
#include "pgbust/redis/sentinel.hpp"

namespace pgbust::redis {

namespace {

using Clock = std::chrono::steady_clock;

std::string text_of(const redisReply* r) {
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
      r->type == REDIS_REPLY_ERROR)
    return std::string(r->str, r->len);
  if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
  return "";
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class Session {
 public:
  Session(const Options& o, const Endpoint& ep, const detail::TlsContext* tls)
      : opt_(o), conn_(ep, tls) {
    const auto deadline = Clock::now() + o.connect_timeout;
    while (conn_.connecting()) {
      wait(conn_.connect_events(), deadline, "connect");
      if (conn_.finish_connect()) break;
    }
  }

  detail::Reply call(std::initializer_list<std::string_view> argv) {
    return call(std::vector<std::string_view>(argv));
  }
  detail::Reply call(const std::vector<std::string_view>& argv) {
    detail::append_command(conn_.out(), std::span<const std::string_view>(argv));
    const auto deadline = Clock::now() + opt_.command_timeout;
    const std::string what(argv.empty() ? "" : argv[0]);
    for (;;) {
      if (conn_.want_write()) conn_.flush();
      if (auto r = conn_.next_reply()) return r;
      short events = static_cast<short>(POLLIN | (conn_.want_write() ? POLLOUT : 0));
      short got = wait(events, deadline, "reply to " + what);
      if ((got & (POLLIN | POLLERR | POLLHUP)) || conn_.read_wants_write()) conn_.read();
    }
  }

 private:
  short wait(short events, Clock::time_point deadline, const std::string& what) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0)
        throw ConnectionError(what + " timed out" +
                              (conn_.handshaking() && !conn_.connecting_tcp()
                                   ? " in the TLS handshake (wrong protocol on the port?)"
                                   : ""));
      pollfd p{conn_.fd(), events, 0};
      int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n > 0) return p.revents;
    }
  }

  const Options& opt_;
  detail::Conn conn_;
};

}  // namespace

namespace {

// One node: connect, AUTH, SELECT, then each command. With `topo`, the node's view of the
// cluster is read too (CLUSTER SHARDS, else CLUSTER SLOTS).
// `want_master`: ROLE must say master (a Sentinel's answer is checked like run checks it).
AccessReport check_node(const Options& options, const Endpoint& ep,
                        const std::vector<std::vector<std::string>>& commands, Topology* topo,
                        bool want_master = false) {
  std::unique_ptr<detail::TlsContext> tls;
  if (ep.tls) tls = std::make_unique<detail::TlsContext>(options.tls, ep);
  AccessReport report;
  report.server = ep.describe();
  report.user = ep.user.empty() ? "default" : ep.user;
  auto fail = [&](const std::string& what) -> Error {
    return Error("redis " + report.server + ": " + what);
  };
  try {
    Session s(options, ep, tls.get());
    if (!ep.password.empty()) {
      auto r =
          ep.user.empty() ? s.call({"AUTH", ep.password}) : s.call({"AUTH", ep.user, ep.password});
      if (r->type == REDIS_REPLY_ERROR)
        throw fail("AUTH failed: " + text_of(r.get()) + " (" +
                   access_advice(text_of(r.get()), ep.user, "auth") + ")");
    }
    if (ep.db != 0) {
      auto r = s.call({"SELECT", std::to_string(ep.db)});
      if (r->type == REDIS_REPLY_ERROR) {
        std::string t = text_of(r.get());
        throw fail("SELECT " + std::to_string(ep.db) + " failed: " + t +
                   (is_access_error(t) ? " (" + access_advice(t, ep.user, "select") + ")" : ""));
      }
    }
    if (want_master) {
      auto r = s.call({"ROLE"});
      if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
          r->element[0]->type == REDIS_REPLY_STRING && text_of(r->element[0]) != "master")
        throw fail("ROLE says '" + text_of(r->element[0]) +
                   "', not master: the sentinels named a node that is not the master (a "
                   "failover under way?)");
    }
    if (topo) {
      auto r = s.call({"CLUSTER", "SHARDS"});
      if (r->type == REDIS_REPLY_ERROR && text_of(r.get()).find("nknown") != std::string::npos) {
        r = s.call({"CLUSTER", "SLOTS"});
        if (r->type != REDIS_REPLY_ERROR) *topo = detail::parse_cluster_slots(r.get(), ep.host);
      } else if (r->type != REDIS_REPLY_ERROR) {
        *topo = detail::parse_cluster_shards(r.get(), ep.tls, ep.host);
      }
      if (r->type == REDIS_REPLY_ERROR)
        throw fail("reading the cluster topology failed: " + text_of(r.get()) +
                   " (is this a Redis Cluster node? without cluster mode drop redis.cluster "
                   "and the +cluster from the URL)");
      if (topo->covered() < kSlots)
        throw fail("only " + std::to_string(topo->covered()) + " of " + std::to_string(kSlots) +
                   " hash slots are served (cluster_state is not ok); keys in the others "
                   "cannot be invalidated");
    }
    // ACL DRYRUN (Redis 7) when this user may run it; else probes.
    bool dryrun = true;
    for (const auto& argv : commands) {
      std::string label = argv[0];
      const bool message = argv[0] == "PUBLISH" || argv[0] == "XADD";  // reaches subscribers
      if (message) label += " to " + argv[1];
      std::string refusal;
      if (dryrun) {
        std::vector<std::string_view> a{"ACL", "DRYRUN", report.user};
        a.insert(a.end(), argv.begin(), argv.end());
        auto r = s.call(a);
        std::string t = text_of(r.get());
        if (r->type == REDIS_REPLY_ERROR) {
          dryrun = false;  // not offered (Redis 6) or not to this user: probe instead
        } else if (t != "OK") {
          refusal = t;
        }
      }
      if (!dryrun && message) {
        report.allowed.push_back(label + " (not probed: a probe would reach subscribers)");
        continue;
      }
      if (!dryrun) {
        std::vector<std::string_view> a(argv.begin(), argv.end());
        auto r = s.call(a);
        std::string t = text_of(r.get());
        if (r->type == REDIS_REPLY_ERROR && is_access_error(t)) refusal = t;
      }
      if (refusal.empty()) {
        report.allowed.push_back(label);
        continue;
      }
      report.refused.push_back(label + ": " + refusal);
      std::string grant;
      if (lower(refusal).find("channel") != std::string::npos)
        grant = "&" + argv[1];
      else if (lower(refusal).find("key") != std::string::npos)
        grant = "~" + argv[1];
      else
        grant = "+" + lower(argv[0]);
      report.grants.push_back(grant);
    }
    report.method = dryrun ? "ACL DRYRUN" : "probes";
  } catch (const ConnectionError& e) {
    throw fail(e.what());
  }
  return report;
}

// The master's address as the first sentinel that answers names it.
Endpoint ask_sentinels(const Options& options, std::string& via) {
  const std::vector<Endpoint> sentinels = detail::sentinel_endpoints(options);
  Endpoint node = detail::sentinel_data_endpoint(options);
  const std::string& name = options.sentinel.master;
  std::vector<std::string> failures;
  for (const auto& ep : sentinels) {
    const std::string addr = Topology::Node{ep.host, ep.port}.addr();
    try {
      std::unique_ptr<detail::TlsContext> tls;
      if (ep.tls) tls = std::make_unique<detail::TlsContext>(options.sentinel.tls, ep);
      Session s(options, ep, tls.get());
      if (!ep.password.empty()) {
        auto r = ep.user.empty() ? s.call({"AUTH", ep.password})
                                 : s.call({"AUTH", ep.user, ep.password});
        if (r->type == REDIS_REPLY_ERROR)
          throw Error("AUTH failed: " + text_of(r.get()) + " (" +
                      access_advice(text_of(r.get()), ep.user, "auth") + ")");
      }
      auto r = s.call({"SENTINEL", "GET-MASTER-ADDR-BY-NAME", name});
      if (r->type == REDIS_REPLY_NIL) throw Error("does not know a master named '" + name + "'");
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        throw Error("SENTINEL GET-MASTER-ADDR-BY-NAME failed: " + text_of(r.get()));
      std::tie(node.host, node.port) = detail::parse_host_port(
          text_of(r->element[0]) + ":" + text_of(r->element[1]), "the master address");
      via = addr;
      return node;
    } catch (const Error& e) {
      failures.push_back("sentinel " + addr + ": " + e.what());
    }
  }
  std::string all;
  for (const auto& f : failures) all += (all.empty() ? "" : "; ") + f;
  throw Error("redis sentinel '" + name + "': no sentinel named the master: " + all);
}

}  // namespace

// A cluster: the topology from the first seed that answers, then every master checked
// (ACL users are configured per node). MOVED answers to probes are not refusals.
AccessReport check_access(const Options& options,
                          const std::vector<std::vector<std::string>>& commands) {
  if (!options.sentinel.master.empty()) {
    std::string via;
    const Endpoint master = ask_sentinels(options, via);
    AccessReport r = check_node(options, master, commands, nullptr, true);
    r.server = "sentinel '" + options.sentinel.master + "' master " + r.server +
               " (named by sentinel " + via + ")";
    return r;
  }
  if (!options.cluster && !detail::is_cluster_url(options.url))
    return check_node(options, resolve_endpoint(options), commands, nullptr);
  const std::vector<Endpoint> seeds = detail::cluster_seeds(options);
  std::vector<std::vector<std::string>> with_asking = commands;  // ASK redirections need it
  with_asking.push_back({"ASKING"});
  Topology topo;
  AccessReport report;
  std::optional<Error> failed;
  std::string asked;
  for (const auto& seed : seeds) {
    try {
      report = check_node(options, seed, with_asking, &topo);
      asked = Topology::Node{seed.host, seed.port}.addr();
      failed.reset();
      break;
    } catch (const Error& e) {
      if (!failed) failed = e;
    }
  }
  if (failed) throw *failed;
  std::string masters;
  for (const auto& m : topo.masters) {
    masters += (masters.empty() ? "" : ", ") + m.addr();
    if (m.addr() == asked) continue;  // a seed that is a master: checked already
    Endpoint ep = seeds.front();
    ep.host = m.host;
    ep.port = m.port;
    AccessReport r = check_node(options, ep, with_asking, nullptr);
    for (const auto& refused : r.refused)
      report.refused.push_back(refused + " (on " + m.addr() + ")");
    for (const auto& g : r.grants)
      if (std::find(report.grants.begin(), report.grants.end(), g) == report.grants.end())
        report.grants.push_back(g);
    if (r.method != report.method) report.method += " / " + r.method;
  }
  report.server = "cluster of " + std::to_string(topo.masters.size()) + " masters (" + masters +
                  ") via " + asked;
  return report;
}

}  // namespace pgbust::redis
