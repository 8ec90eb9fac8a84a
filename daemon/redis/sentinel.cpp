// Redis Sentinel: a link to one sentinel at a time (master address, failover events) and the
// applier that writes through a Target on the current master and re-applies on a failover.
#include "pgbust/redis/sentinel.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/cluster.hpp"
#include "pgbust/redis/errors.hpp"

namespace pgbust::redis {

// --- addresses and options -----------------------------------------------------------------

namespace detail {

std::pair<std::string, int> parse_host_port(std::string_view addr, std::string_view what) {
  auto bad = [&]() -> Error {
    return Error(std::string(what) + " '" + std::string(addr) +
                 "': expected host:port (an IPv6 address as [addr]:port)");
  };
  const auto colon = addr.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == addr.size()) throw bad();
  std::string host(addr.substr(0, colon));
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') throw bad();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    throw bad();
  }
  int port = 0;
  for (char c : addr.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) throw bad();
    port = port * 10 + (c - '0');
  }
  if (port < 1 || port > 65535) throw bad();
  return {host, port};
}

std::vector<Endpoint> sentinel_endpoints(const Options& options) {
  const SentinelOptions& s = options.sentinel;
  if (s.master.empty()) throw Error("redis.sentinel needs 'master: NAME'");
  if (s.addresses.empty())
    throw Error("redis.sentinel '" + s.master + "' needs 'addresses: [host:port, ...]'");
  std::string password;
  if (!s.password_file.empty()) password = read_password_file(s.password_file);
  if (!s.user.empty() && password.empty())
    throw Error("redis.sentinel '" + s.master + "': user '" + s.user +
                "' has no password (give sentinel.password_file)");
  std::vector<Endpoint> out;
  for (const auto& a : s.addresses) {
    Endpoint ep;
    std::tie(ep.host, ep.port) = parse_host_port(a, "redis.sentinel address");
    ep.tls = s.tls.configured;
    ep.user = s.user;
    ep.password = password;
    out.push_back(std::move(ep));
  }
  return out;
}

Endpoint sentinel_data_endpoint(const Options& options) {
  if (options.cluster || is_cluster_url(options.url))
    throw Error("redis.sentinel '" + options.sentinel.master +
                "': a Sentinel-managed master is not a Redis Cluster; drop redis.cluster or the "
                "+cluster URL");
  Endpoint ep = resolve_endpoint(options);
  if (ep.unix_socket)
    throw Error("redis.sentinel '" + options.sentinel.master +
                "': the sentinels name a TCP master; the URL must be redis:// or rediss:// "
                "(its host:port is replaced by the master's), not unix://");
  return ep;
}

namespace {
std::string percent_encode(std::string_view s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
      out.push_back(ch);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}
}  // namespace

Options master_options(const Options& options, const Endpoint& node, const std::string& host,
                       int port) {
  Options o = options;
  o.sentinel = {};
  // The password read so far goes in the URL; a password_file stays, so the master's Target
  // re-reads it before every connect and on reload (a rotated password needs no restart).
  std::string url = node.tls ? "rediss://" : "redis://";
  if (!node.password.empty())
    url += percent_encode(node.user) + ":" + percent_encode(node.password) + "@";
  url += Topology::Node{host, port}.addr() + "/" + std::to_string(node.db);
  o.url = std::move(url);
  return o;
}

std::optional<std::pair<std::string, int>> parse_sentinel_event(std::string_view channel,
                                                                std::string_view payload,
                                                                std::string_view master) {
  std::vector<std::string_view> w;
  for (std::size_t b = 0; b < payload.size();) {
    auto e = std::min(payload.find(' ', b), payload.size());
    if (e > b) w.push_back(payload.substr(b, e - b));
    b = e + 1;
  }
  auto port_of = [](std::string_view p) -> std::optional<int> {
    int v = 0;
    if (p.empty() || p.size() > 5) return std::nullopt;
    for (char c : p) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v > 0 && v <= 65535 ? std::optional<int>(v) : std::nullopt;
  };
  // +switch-master: "<master> <old ip> <old port> <new ip> <new port>"
  if (channel == "+switch-master" && w.size() == 5 && w[0] == master)
    if (auto p = port_of(w[4])) return std::make_pair(std::string(w[3]), *p);
  // +promoted-slave: "slave <ip>:<port> <ip> <port> @ <master> <ip> <port>"
  if (channel == "+promoted-slave" && w.size() == 8 && w[0] == "slave" && w[4] == "@" &&
      w[5] == master)
    if (auto p = port_of(w[3])) return std::make_pair(std::string(w[2]), *p);
  return std::nullopt;
}

}  // namespace detail

// --- the applier ---------------------------------------------------------------------------

namespace {

constexpr auto kCheck = std::chrono::milliseconds(50);          // master health and ROLE
constexpr auto kResolveAgain = std::chrono::milliseconds(500);  // re-asking, at most this often
constexpr auto kReplayWindow = std::chrono::seconds(30);        // see SentinelTarget
constexpr std::size_t kReplayMaxItems = 200000;                 // keys, patterns, bumps, ...

std::size_t items(const Batch& b) {
  return b.deletes.size() + b.patterns.size() + b.bumps.size() + b.publishes.size() +
         b.streams.size();
}

std::string text(const redisReply* r) {
  if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
      r->type == REDIS_REPLY_ERROR)
    return std::string(r->str, r->len);
  if (r->type == REDIS_REPLY_NIL) return "(nil)";
  if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
  return "(array of " + std::to_string(r->elements) + ")";
}

bool is_string(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

}  // namespace

struct SentinelTarget::Impl {
  enum class Link : std::uint8_t { Idle, Connecting, Asking, Subscribed, BackingOff };
  enum class Ask : std::uint8_t { Auth, GetMaster, Subscribe, Ping };
  struct Pending {
    Batch batch;
    std::function<void()> done;  // empty for a replay
    bool submitted = false;      // handed to the current master's Target
  };
  struct Applied {
    TimePoint at;
    Batch batch;
  };

  Options opt;
  Endpoint node_ep;  // scheme, AUTH and db of the data node
  std::vector<Endpoint> sentinels;
  std::vector<std::unique_ptr<detail::TlsContext>> sentinel_tls;
  Loop* loop = nullptr;
  bool closed = false;

  // The link to sentinels[at].
  Link link = Link::Idle;
  std::unique_ptr<detail::Conn> conn;
  std::size_t at = 0;
  std::size_t failed_in_row = 0;
  Clock::duration backoff{};
  TimePoint link_due{};  // connect or reply deadline, backoff end, next PING
  std::deque<Ask> asked;
  TimePoint ask_again_at{};
  TimePoint logged{};  // link failures: logged at most once per log_interval

  // The master.
  std::string master;  // "host:port"
  std::unique_ptr<Target> node;
  std::vector<std::unique_ptr<Target>> graveyard;  // out of the loop, destroyed next round
  bool verified = false;                           // its handshake's ROLE said master
  TimePoint next_check{};
  std::uint64_t generation = 0;  // done() of an earlier master's Target is ignored

  std::map<std::uint64_t, Pending> replays;  // applied on an earlier master: first
  std::map<std::uint64_t, Pending> batches;
  std::uint64_t next_id = 1;
  std::deque<Applied> recent;  // applied on this master within the replay window
  std::size_t recent_items = 0;
  std::deque<std::function<void()>> completions;
  std::function<void(double)> on_pass;  // every master's keyspace passes
  Stats closed_stats;
  mutable Stats total;
  std::uint64_t failovers = 0;
  std::string error;

  explicit Impl(Options o)
      : opt(std::move(o)),
        node_ep(detail::sentinel_data_endpoint(opt)),
        sentinels(detail::sentinel_endpoints(opt)) {
    for (const auto& s : sentinels)
      sentinel_tls.push_back(s.tls ? std::make_unique<detail::TlsContext>(opt.sentinel.tls, s)
                                   : nullptr);
    // The data node's TLS settings are checked now too (as a Target on the URL's host).
    if (node_ep.tls) detail::TlsContext check(opt.tls, node_ep);
  }

  std::string who() const { return "redis sentinel '" + opt.sentinel.master + "'"; }
  std::string sentinel_name() const {
    return Topology::Node{sentinels[at].host, sentinels[at].port}.addr();
  }

  // --- the link --------------------------------------------------------------------------

  void connect_link(TimePoint now) {
    asked.clear();
    link = Link::Connecting;
    link_due = now + opt.connect_timeout;
    try {
      conn = std::make_unique<detail::Conn>(sentinels[at], sentinel_tls[at].get());
      if (!conn->connecting()) send_questions(now);
    } catch (const ConnectionError& e) {
      link_failed(std::string("connect failed: ") + e.what(), now);
    }
  }

  void send_questions(TimePoint now) {
    const Endpoint& s = sentinels[at];
    if (!s.password.empty()) {
      if (s.user.empty())
        detail::append_command(conn->out(), {"AUTH", s.password});
      else
        detail::append_command(conn->out(), {"AUTH", s.user, s.password});
      asked.push_back(Ask::Auth);
    }
    detail::append_command(conn->out(),
                           {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", opt.sentinel.master});
    asked.push_back(Ask::GetMaster);
    detail::append_command(conn->out(), {"SUBSCRIBE", "+switch-master", "+promoted-slave"});
    asked.push_back(Ask::Subscribe);
    asked.push_back(Ask::Subscribe);
    link = Link::Asking;
    link_due = now + opt.command_timeout;
    conn->flush();
  }

  // This sentinel failed: the next one at once, backoff once every one failed in a row.
  void link_failed(const std::string& what, TimePoint now) {
    conn.reset();
    asked.clear();
    error = who() + ": sentinel " + sentinel_name() + ": " + what;
    if (logged == TimePoint{} || now - logged >= opt.log_interval) {
      spdlog::warn("{}; asking the next sentinel", error);
      logged = now;
    }
    at = (at + 1) % sentinels.size();
    if (++failed_in_row < sentinels.size()) {
      link = Link::Idle;
      link_due = now;
      return;
    }
    failed_in_row = 0;
    backoff = backoff == Clock::duration{}
                  ? Clock::duration(opt.backoff_min)
                  : std::min<Clock::duration>(backoff * 2, opt.backoff_max);
    link = Link::BackingOff;
    link_due = now + backoff;
  }

  // Ask the sentinels again (after READONLY, a lost master, a replica found): a new link.
  void ask_again(TimePoint now, const std::string& why) {
    if (closed || now < ask_again_at || link == Link::Connecting || link == Link::Asking) return;
    ask_again_at = now + kResolveAgain;
    spdlog::debug("{}: asking the sentinels again ({})", who(), why);
    conn.reset();
    link = Link::Idle;
    link_due = now;
  }

  void link_reply(detail::Reply r, TimePoint now) {
    const redisReply* x = r.get();
    if (x->type == REDIS_REPLY_ARRAY && x->elements == 3 && is_string(x->element[0]) &&
        text(x->element[0]) == "message") {  // an event, between the replies
      auto to = detail::parse_sentinel_event(text(x->element[1]), text(x->element[2]),
                                             opt.sentinel.master);
      if (to) {
        spdlog::info("{}: sentinel {} reports {} {}", who(), sentinel_name(), text(x->element[1]),
                     text(x->element[2]));
        use_master(to->first, to->second, now);
      }
      return;
    }
    if (asked.empty()) return link_failed("a reply nobody asked for: " + text(x), now);
    const Ask a = asked.front();
    asked.pop_front();
    if (x->type == REDIS_REPLY_ERROR) {
      const std::string t = text(x);
      std::string what = a == Ask::Auth ? "AUTH" : a == Ask::GetMaster ? "SENTINEL" : "SUBSCRIBE";
      what += " failed: " + t;
      if (is_access_error(t))
        what +=
            " (" + access_advice(t, sentinels[at].user, a == Ask::Auth ? "auth" : "sentinel") + ")";
      return link_failed(what, now);
    }
    switch (a) {
      case Ask::Auth:
      case Ask::Subscribe:
        break;
      case Ask::Ping:
        link_due = now + opt.ping_interval;
        break;
      case Ask::GetMaster:
        if (x->type == REDIS_REPLY_NIL)
          return link_failed("does not know a master named '" + opt.sentinel.master +
                                 "' (check redis.sentinel.master: SENTINEL MASTERS lists them)",
                             now);
        if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 || !is_string(x->element[0]) ||
            !is_string(x->element[1]))
          return link_failed("unexpected reply to GET-MASTER-ADDR-BY-NAME: " + text(x), now);
        try {
          auto [host, port] = detail::parse_host_port(
              text(x->element[0]) + ":" + text(x->element[1]), "the master address");
          use_master(host, port, now);
        } catch (const Error& e) {
          return link_failed(e.what(), now);
        }
        break;
    }
    if (link == Link::Asking && asked.empty()) {
      link = Link::Subscribed;
      failed_in_row = 0;
      backoff = {};
      link_due = now + opt.ping_interval;
    }
  }

  void on_link_ready(short revents, TimePoint now) {
    try {
      if (link == Link::Connecting) {
        if (conn->finish_connect()) send_questions(now);
        return;
      }
      if ((revents & (POLLIN | POLLERR | POLLHUP)) || conn->read_wants_write()) {
        while (conn && conn->read()) {
          while (conn) {
            detail::Reply r = conn->next_reply();
            if (!r) break;
            link_reply(std::move(r), now);
          }
        }
      }
      if (conn && conn->want_write()) conn->flush();
    } catch (const ConnectionError& e) {
      link_failed(e.what(), now);
    }
  }

  void link_timer(TimePoint now) {
    if (now < link_due) return;
    switch (link) {
      case Link::Idle:
      case Link::BackingOff:
        connect_link(now);
        break;
      case Link::Connecting:
        link_failed(fmt::format("connect timed out after {}ms", opt.connect_timeout.count()), now);
        break;
      case Link::Asking:
        link_failed(fmt::format("no reply within {}ms", opt.command_timeout.count()), now);
        break;
      case Link::Subscribed:
        if (!asked.empty()) {  // the PING went unanswered
          link_failed(fmt::format("no reply to PING within {}ms", opt.command_timeout.count()),
                      now);
          break;
        }
        detail::append_command(conn->out(), {"PING"});
        asked.push_back(Ask::Ping);
        link_due = now + opt.command_timeout;
        try {
          conn->flush();
        } catch (const ConnectionError& e) {
          link_failed(e.what(), now);
        }
        break;
    }
  }

  // --- the master --------------------------------------------------------------------------

  void use_master(const std::string& host, int port, TimePoint now) {
    const std::string addr = Topology::Node{host, port}.addr();
    if (addr == master) return;
    std::unique_ptr<Target> t;
    try {
      t = std::make_unique<Target>(detail::master_options(opt, node_ep, host, port));
    } catch (const Error& e) {
      error = who() + ": master " + addr + ": " + e.what();
      spdlog::error("{}", error);
      return;
    }
    const std::string was = master;
    master = addr;
    if (node) retire(now);
    node = std::move(t);
    if (on_pass) node->on_pass(on_pass);
    if (loop) loop->add(node.get());
    verified = false;
    ++generation;
    if (was.empty()) {
      spdlog::info("{}: master is {} (from sentinel {})", who(), addr, sentinel_name());
    } else {
      ++failovers;
      spdlog::warn(
          "{}: failover: the master is now {} (was {}); applying again there {} batch(es) "
          "applied on the old master in the last {}s and {} unfinished one(s)",
          who(), addr, was, replays.size(),
          std::chrono::duration_cast<std::chrono::seconds>(kReplayWindow).count(), batches.size());
    }
  }

  // The old master's Target is closed: its unfinished batches and the ones it applied lately
  // go to the next master.
  void retire(TimePoint now) {
    add_counters(closed_stats, node->stats());
    if (loop) loop->remove(node.get());
    node->close();
    graveyard.push_back(std::move(node));
    for (auto& [id, p] : replays) p.submitted = false;
    for (auto& [id, p] : batches) p.submitted = false;
    for (auto& a : recent)
      if (now - a.at <= kReplayWindow) replays[next_id++] = Pending{std::move(a.batch), {}, false};
    recent.clear();
    recent_items = 0;
  }

  void submit_all() {
    for (auto* m : {&replays, &batches})
      for (auto& [id, p] : *m) submit(id, p);
  }

  void submit(std::uint64_t id, Pending& p) {
    if (p.submitted || !node || !verified) return;
    p.submitted = true;
    const std::uint64_t g = generation;
    node->apply(p.batch, [this, id, g] { applied(id, g); });
  }

  void applied(std::uint64_t id, std::uint64_t g) {
    if (closed || g != generation) return;
    const TimePoint now = Clock::now();
    std::function<void()> done;
    for (auto* m : {&replays, &batches}) {
      auto it = m->find(id);
      if (it == m->end()) continue;
      done = std::move(it->second.done);
      remember(std::move(it->second.batch), now);
      m->erase(it);
    }
    if (done) done();
  }

  void remember(Batch b, TimePoint now) {
    while (!recent.empty() && now - recent.front().at > kReplayWindow) forget_oldest();
    recent_items += items(b);
    recent.push_back({now, std::move(b)});
    while (recent_items > kReplayMaxItems && recent.size() > 1) forget_oldest();
  }
  void forget_oldest() {
    recent_items -= items(recent.front().batch);
    recent.pop_front();
  }

  void check_master(TimePoint now) {
    if (!node) return;
    const State s = node->state();
    const std::string role = node->role();
    if (s == State::Ready && !verified) {
      if (role == "master" || role.empty()) {  // "": ROLE refused to this user; trust Sentinel
        verified = true;
        error.clear();
        submit_all();
        return;
      }
      error = who() + ": " + master + " says it is a " + role + ", not the master";
    }
    if (s == State::Ready && role != "master" && !role.empty())
      ask_again(now, master + " is a " + role);
    else if (s == State::BackingOff)
      ask_again(now, master + " is " + std::string(to_string(s)));
  }

  // --- the loop ------------------------------------------------------------------------------

  void on_timer(TimePoint now) {
    graveyard.clear();
    if (closed) return;
    auto done = std::move(completions);
    completions.clear();
    for (auto& d : done)
      if (d) d();
    if (now >= next_check) {
      next_check = now + kCheck;
      check_master(now);
    }
    link_timer(now);
  }

  TimePoint deadline() const {
    if (closed) return graveyard.empty() ? kNever : TimePoint{};
    if (!completions.empty() || !graveyard.empty()) return TimePoint{};
    return std::min(link_due, node ? next_check : kNever);
  }

  State state() const {
    if (closed) return State::Disconnected;
    if (!node) return link == Link::BackingOff ? State::BackingOff : State::Connecting;
    const State s = node->state();
    return s == State::Ready && !verified ? State::Handshake : s;
  }
};

SentinelTarget::SentinelTarget(Options options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

SentinelTarget::~SentinelTarget() {
  close();
}

void SentinelTarget::apply(Batch batch, std::function<void()> done) {
  if (batch.empty()) {  // completes on the next round, even before the master is known
    impl_->completions.push_back(std::move(done));
    return;
  }
  const std::uint64_t id = impl_->next_id++;
  auto& p = impl_->batches[id];
  p.batch = std::move(batch);
  p.done = std::move(done);
  impl_->submit(id, p);  // done() only ever runs from the loop
}

bool SentinelTarget::idle() const {
  if (!impl_->completions.empty()) return false;
  for (const auto* m : {&impl_->replays, &impl_->batches})
    for (const auto& [id, p] : *m)
      if (!p.submitted) return false;
  return !impl_->node || impl_->node->idle();
}

State SentinelTarget::state() const {
  return impl_->state();
}

const Stats& SentinelTarget::stats() const {
  Stats& t = impl_->total;
  t = impl_->closed_stats;
  if (impl_->node) {  // counters summed over the masters; what is true now, of this one
    const Stats& n = impl_->node->stats();
    add_counters(t, n);
    t.failing_batches = n.failing_batches;
    t.pass_running = n.pass_running;
    t.pass_scanned = n.pass_scanned;
    t.pass_dbsize = n.pass_dbsize;
    t.pass_patterns = n.pass_patterns;
    t.scan_count = n.scan_count;
  }
  t.failovers = impl_->failovers;
  return t;
}

std::string SentinelTarget::last_error() const {
  if (impl_->node && impl_->node->state() != State::Ready) {
    const std::string e = impl_->node->last_error();
    if (!e.empty()) return e;
  }
  return impl_->error;
}

std::string SentinelTarget::describe() const {
  std::string s = "sentinel '" + impl_->opt.sentinel.master + "' master ";
  if (impl_->master.empty()) return s + "not known yet";
  Endpoint ep = impl_->node_ep;
  std::tie(ep.host, ep.port) = detail::parse_host_port(impl_->master, "master");
  return s + ep.describe();
}

std::string SentinelTarget::name() const {
  return impl_->opt.name;
}

std::string SentinelTarget::role() const {
  return impl_->node && impl_->verified ? impl_->node->role() : "";
}

bool SentinelTarget::tls() const {
  return impl_->node_ep.tls;
}

std::string SentinelTarget::tls_version() const {
  return impl_->node ? impl_->node->tls_version() : "";
}

std::size_t SentinelTarget::queued() const {
  return impl_->batches.size() + impl_->completions.size();
}

void SentinelTarget::attach(Loop& loop) {
  impl_->loop = &loop;
  loop.add(this);
  if (impl_->node) loop.add(impl_->node.get());
}

void SentinelTarget::detach(Loop& loop) {
  loop.remove(this);
  if (impl_->node) loop.remove(impl_->node.get());
  impl_->loop = nullptr;
}

void SentinelTarget::close() noexcept {
  if (!impl_ || impl_->closed) return;
  impl_->closed = true;
  impl_->conn.reset();
  if (impl_->node) impl_->node->close();
}

void SentinelTarget::reread_password() {
  if (impl_->node) impl_->node->reread_password();
}

void SentinelTarget::on_pass(std::function<void(double seconds)> observe) {
  impl_->on_pass = std::move(observe);
  if (impl_->node) impl_->node->on_pass(impl_->on_pass);
}

std::string SentinelTarget::master_address() const {
  return impl_->master;
}

std::uint64_t SentinelTarget::failovers() const {
  return impl_->failovers;
}

int SentinelTarget::fd() const {
  return impl_->conn ? impl_->conn->fd() : -1;
}

short SentinelTarget::events() const {
  if (!impl_->conn) return 0;
  if (impl_->link == Impl::Link::Connecting) return impl_->conn->connect_events();
  return static_cast<short>(POLLIN | (impl_->conn->want_write() ? POLLOUT : 0));
}

void SentinelTarget::on_ready(short revents) {
  if (impl_->closed || !impl_->conn) return;
  impl_->on_link_ready(revents, Clock::now());
}

TimePoint SentinelTarget::deadline() const {
  return impl_->deadline();
}

void SentinelTarget::on_timer(TimePoint now) {
  impl_->on_timer(now);
}

}  // namespace pgbust::redis
