// The Redis target: connection phases on a Session (backoff, rate-limited failure lines,
// counters), and the
// applier that streams each batch's idempotent commands through a bounded pipeline.
#include <hiredis/hiredis.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <optional>
#include <set>

#include "pgbust/core/error.hpp"
#include "pgbust/core/glob.hpp"
#include "pgbust/core/session.hpp"
#include "pgbust/redis/cluster.hpp"
#include "pgbust/redis/errors.hpp"
#include "pgbust/redis/redis.hpp"

namespace pgbust::redis {

std::string_view to_string(State s) {
  switch (s) {
    case State::Disconnected:
      return "disconnected";
    case State::Connecting:
      return "connecting";
    case State::Handshake:
      return "handshake";
    case State::Ready:
      return "ready";
    case State::BackingOff:
      return "backing off";
  }
  return "?";
}

namespace {

using detail::Conn;
using detail::Reply;

enum class Kind : std::uint8_t {
  Auth,
  Select,
  SetName,
  Role,
  Ping,
  Unlink,
  Scan,
  DbSize,
  SetNx,
  Incr,
  Publish,
  Asking,  // cluster: before a command of an ASK redirection
  Query,   // cluster: Target::query()
  Xadd
};

std::string_view command_name(Kind k) {
  switch (k) {
    case Kind::Auth:
      return "AUTH";
    case Kind::Select:
      return "SELECT";
    case Kind::SetName:
      return "CLIENT SETNAME";
    case Kind::Role:
      return "ROLE";
    case Kind::Ping:
      return "PING";
    case Kind::Unlink:
      return "UNLINK";
    case Kind::Scan:
      return "SCAN";
    case Kind::DbSize:
      return "DBSIZE";
    case Kind::SetNx:
      return "SET NX";
    case Kind::Incr:
      return "INCR";
    case Kind::Publish:
      return "PUBLISH";
    case Kind::Asking:
      return "ASKING";
    case Kind::Query:
      return "query";
    case Kind::Xadd:
      return "XADD";
  }
  return "?";
}

// The command as ACL rules name it (ACL SETUSER user +<this>).
std::string acl_name(Kind k) {
  if (k == Kind::SetName) return "client|setname";
  if (k == Kind::SetNx) return "set";
  std::string name(command_name(k));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

// A command sent and not yet answered. `batch`: the id of the batch it belongs to (0: none,
// e.g. a keyspace pass's or the handshake's); `pass`: the keyspace pass it belongs to (0:
// none); `index`: bump / publish index in the batch.
struct Expect {
  Kind kind;
  std::uint64_t batch = 0;
  std::uint64_t pass = 0;
  std::size_t index = 0;
  std::size_t count = 0;  // keys in an UNLINK, COUNT of a SCAN
  TimePoint sent;
  std::vector<std::string> keys;  // a cluster node's UNLINK: its keys, for a redirection
};

// An idle connection closed after being up this long is reopened at once; one closed sooner
// counts as a failure (backoff), so a server that drops every connection is not hammered.
constexpr auto kIdleReconnectAfter = std::chrono::seconds(1);

// SCAN COUNT of a keyspace pass adapts so each call stays short on the server (a SCAN blocks
// every other client while it runs): the time from the reply before it to its own reply
// (about its time on the server, as commands queued ahead are answered first) is kept near
// kScanTarget, within [kScanCountMin, kScanCountMax].
constexpr auto kScanTarget = std::chrono::microseconds(2000);
constexpr std::size_t kScanCountMin = 16;
constexpr std::size_t kScanCountMax = 20000;

// A key or pattern for a log line: bounded, non-printable bytes escaped.
std::string printable(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string reply_text(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return printable(std::string_view(r->str, r->len), 400);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY:
      return "(array of " + std::to_string(r->elements) + ")";
  }
  return "(reply type " + std::to_string(r->type) + ")";
}

// INCR errors that no retry can fix: the key holds something that is not a counter.
bool is_counter_error(std::string_view text) {
  return text.starts_with("WRONGTYPE") || text.find("not an integer") != std::string_view::npos ||
         text.find("overflow") != std::string_view::npos;
}

std::string seconds(Clock::duration d) {
  return fmt::format("{:.1f}s", std::chrono::duration<double>(d).count());
}

std::string unix_micros() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  return std::to_string(us.count());
}

// A run of failures: logged when it starts, then at most once per interval.
struct Streak {
  std::optional<TimePoint> since;
  TimePoint logged{};
  std::uint64_t count = 0;
};

// Glob-escapes a literal so SCAN MATCH matches only it.
std::string escape_glob(std::string_view literal) {
  std::string out;
  for (char ch : literal) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') out.push_back('\\');
    out.push_back(ch);
  }
  return out;
}

// The patterns of one keyspace pass, matched client-side against each key scanned. Patterns
// are grouped by their literal prefix, so a key is glob-matched only against the patterns
// whose prefix it starts with (a pass may carry thousands of patterns of one table).
class PatternSet {
 public:
  void add(const std::string& pattern) {
    std::string prefix = glob_literal_prefix(pattern);
    if (std::find(lengths_.begin(), lengths_.end(), prefix.size()) == lengths_.end())
      lengths_.push_back(prefix.size());
    by_prefix_[std::move(prefix)].push_back(pattern);
    ++size_;
  }
  std::size_t size() const { return size_; }
  bool matches(std::string_view key) const {
    for (std::size_t len : lengths_) {
      if (key.size() < len) continue;
      auto it = by_prefix_.find(key.substr(0, len));
      if (it == by_prefix_.end()) continue;
      for (const std::string& p : it->second)
        if (glob_match(p, key)) return true;
    }
    return false;
  }
  // The longest literal prefix of every pattern: SCAN MATCH <it>* lets the server skip the
  // keys no pattern can match ("" when the patterns share none).
  std::string common_prefix() const {
    std::optional<std::string> common;
    for (const auto& [prefix, patterns] : by_prefix_) {
      if (!common) {
        common = prefix;
        continue;
      }
      std::size_t n = 0;
      while (n < common->size() && n < prefix.size() && (*common)[n] == prefix[n]) ++n;
      common->resize(n);
    }
    return common.value_or("");
  }
  std::string describe() const {
    std::string out;
    std::size_t shown = 0;
    for (const auto& [prefix, patterns] : by_prefix_)
      for (const std::string& p : patterns) {
        if (shown == 3) return out + ", ...";
        out += (shown++ ? ", " : "") + printable(p, 80);
      }
    return out;
  }

 private:
  std::map<std::string, std::vector<std::string>, std::less<>> by_prefix_;
  std::vector<std::size_t> lengths_;
  std::size_t size_ = 0;
};

// One keyspace pass: a single SCAN cursor stream over the whole keyspace (or the patterns'
// common prefix), every key matched client-side against all the patterns that were pending
// when it started, and the matches UNLINKed as pages arrive.
//
// Why one stream matched client-side rather than one SCAN MATCH stream per pattern: the cost
// of a pass on the server is walking the keyspace, which MATCH does not reduce (the server
// still visits every key and only filters the reply). N patterns as N MATCH streams walk it
// N times; one stream walks it once however many patterns are pending, and the matching
// (rules' linear glob matcher, Redis's stringmatchlen semantics) runs in pgbust instead of
// on the server. The price is that every key scanned crosses the network once per pass.
struct Pass {
  std::uint64_t id = 0;
  PatternSet patterns;
  std::string match;  // SCAN MATCH argument ("" for none)
  std::string cursor = "0";
  bool scanning = false;            // a SCAN is in flight
  bool last_page = false;           // the server said cursor 0
  std::vector<std::string> doomed;  // matching keys not yet UNLINKed from doomed_pos
  std::size_t doomed_pos = 0;
  std::size_t outstanding = 0;  // its commands in flight
  TimePoint started;
  std::uint64_t scanned = 0;
  std::uint64_t dbsize = 0;  // DBSIZE at its start (0: unknown)
};

// One batch's progress on the current connection; reset when the connection drops.
struct Progress {
  bool started = false;
  std::size_t del_pos = 0;
  bool joined = false;     // its patterns were handed to a keyspace pass (or it has none)
  std::uint64_t pass = 0;  // the pass its patterns are in (0: none to wait for)
  std::size_t bump_pos = 0;
  std::vector<std::size_t> fixups;  // bumps to UNLINK and re-seed
  std::vector<bool> fixed;          // bumps re-seeded once already
  std::vector<bool> redirected;     // cluster: bumps handed to another node
  bool publishing = false;
  std::size_t pub_pos = 0;
  std::size_t outstanding = 0;  // its commands sent and not yet answered
  bool deletes_failed = false;  // an UNLINK or the SCAN of its pass was refused
  std::string failed;           // the first persistent error: send nothing more, set aside
};

}  // namespace

struct Target::Impl {
  struct Pending {
    Batch batch;
    std::function<void()> done;
    // Set aside after a persistent error: retried from retry_at while later batches go on.
    int failures = 0;
    TimePoint retry_at{};
    bool deletes_applied = false;  // an earlier attempt applied every delete and pattern
    std::uint64_t id = 0;          // increasing in queue order
    Progress prog;                 // on the current connection
    PartFlags flags;               // cluster: ASKING, one key per UNLINK, the part's tag
  };
  Options opt;
  Endpoint ep;
  PasswordFile password_file;               // re-read before each connect and on reload
  std::unique_ptr<detail::TlsContext> tls;  // rediss://: loaded once, a session per connection
  Session session;
  bool closed = false;
  bool ever_ready = false;
  std::unique_ptr<Conn> conn;
  std::deque<Expect> in_flight;
  TimePoint ready_since{};
  TimePoint last_reply{};  // an idle connection is PINGed so an outage shows without traffic
  std::deque<Pending> queue;
  std::uint64_t next_id = 1;
  Stats stats;
  Streak deferred;                     // batches set aside after persistent errors
  std::vector<std::string_view> argv;  // scratch for UNLINK chunks
  // Keyspace passes: the running one, and the patterns waiting for the next (which starts
  // when the running one ends). Pass ids increase; passes_done is the latest one finished.
  std::optional<Pass> pass;
  std::vector<std::string> next_patterns;
  std::set<std::string, std::less<>> next_set;
  std::uint64_t pass_counter = 0;
  std::uint64_t passes_done = 0;
  std::size_t scan_count = 0;  // adaptive SCAN COUNT
  std::function<void(double)> on_pass;
  // Cluster node: UNLINKs never mix hash slots, redirections go to the hook, queries.
  bool cluster_node = false;
  std::function<bool(const Redirected&)> redirect_hook;
  std::deque<std::pair<std::vector<std::string>, std::function<void(const redisReply*)>>> queries;
  std::deque<std::function<void(const redisReply*)>> queries_sent;
  std::string stream_maxlen;
  std::string role, tls_version;  // what the last handshake saw

  explicit Impl(Options o) : Impl(o, resolve_endpoint(o)) {}  // checks as check --config does
  Impl(Options o, Endpoint e)
      : opt(std::move(o)),
        ep(std::move(e)),
        session("redis",
                RetryPolicy{opt.backoff_min, opt.backoff_max, 0.5, std::chrono::seconds(30),
                            opt.log_interval},
                Session::Labels{"connecting", "handshake", "ready", true}) {
    session.set_server(ep.describe());
    if (ep.tls) tls = std::make_unique<detail::TlsContext>(opt.tls, ep);
    scan_count = std::clamp(opt.scan_count, kScanCountMin, kScanCountMax);
    stream_maxlen = std::to_string(opt.stream_maxlen);
    argv.reserve(opt.unlink_chunk + 1);
  }

  State state() const {
    switch (session.phase()) {
      case Phase::Connecting:
        return State::Connecting;
      case Phase::Starting:
        return State::Handshake;
      case Phase::Up:
        return State::Ready;
      case Phase::BackingOff:
        return State::BackingOff;
      default:
        return State::Disconnected;
    }
  }

  // --- connection phases ---------------------------------------------------------------

  // Everything sent on the connection is forgotten: every batch starts again from its start
  // (its commands are idempotent) and a keyspace pass under way restarts from cursor 0 with
  // the batches that rejoin it, so none waiting on it completes early.
  void drop_connection() noexcept {
    conn.reset();
    in_flight.clear();
    for (Pending& p : queue) p.prog = Progress{};
    end_pass();
    next_patterns.clear();
    next_set.clear();
    fail_queries();
  }

  // Queries not answered get nullptr (the caller asks elsewhere or again).
  void fail_queries() noexcept {
    auto sent = std::move(queries_sent);
    auto unsent = std::move(queries);
    queries_sent.clear();
    queries.clear();
    for (auto& cb : sent) cb(nullptr);
    for (auto& q : unsent) q.second(nullptr);
  }

  void send_queries(TimePoint now) {
    while (!queries.empty() && room(1)) {
      std::vector<std::string_view> args(queries.front().first.begin(),
                                         queries.front().first.end());
      detail::append_command(conn->out(), args);
      in_flight.push_back({Kind::Query, 0, 0, 0, 0, now, {}});
      queries_sent.push_back(std::move(queries.front().second));
      queries.pop_front();
    }
  }

  void end_pass() noexcept {
    pass.reset();
    stats.pass_running = false;
    stats.pass_scanned = 0;
    stats.pass_dbsize = 0;
  }

  // A batch is being worked on (started and not finished).
  bool busy() const {
    return pass ||
           std::any_of(queue.begin(), queue.end(), [](const Pending& p) { return p.prog.started; });
  }

  // A failure of the connection (`outage`) or of a command: close, back off, retry later.
  // `access`: the server answered but refused this user (NOAUTH, WRONGPASS, NOPERM in the
  // handshake): logged as that, not as "unreachable".
  void fail(const std::string& msg, bool is_outage, TimePoint now, bool access = false) {
    ++stats.errors;
    drop_connection();
    session.fail(msg, now,
                 access      ? " (Redis refuses this user, not an outage; retrying until that is "
                               "fixed; batches stay queued)"
                 : is_outage ? " (Redis unreachable; batches stay queued)"
                             : " (the batch is applied again after reconnecting)");
  }

  // A rotated password file is used from the next connection; an unreadable one keeps the
  // last good password, logged when the failure starts (each time on reload).
  void reread_password(bool reload) {
    const std::string before = password_file.error();
    auto outcome = password_file.refresh(opt, ep);
    if (outcome == PasswordFile::Outcome::Failed && (reload || password_file.error() != before))
      session.log(spdlog::level::err, "{}; keeping the last password read", password_file.error());
    else if (outcome == PasswordFile::Outcome::Changed)
      session.log(spdlog::level::info, "password_file changed; the new password is used from {}",
                  reload ? "the next connection" : "this connection");
  }

  void start_connect(TimePoint now) {
    session.connecting(now, opt.connect_timeout);
    stats.reconnects = session.reconnects();
    reread_password(false);
    try {
      conn = std::make_unique<Conn>(ep, tls.get());
      if (!conn->connecting()) on_connected(now);
    } catch (const ConnectionError& e) {
      fail(e.what(), true, now);
    }
  }

  void send(Kind kind, std::initializer_list<std::string_view> args, TimePoint now,
            std::size_t index = 0, Pending* p = nullptr) {
    asking(kind, p, now);
    detail::append_command(conn->out(), args);
    in_flight.push_back({kind, p ? p->id : 0, 0, index, 0, now, {}});
    if (p) ++p->prog.outstanding;
  }

  // An ASK redirection's command is preceded by ASKING (it admits one command).
  void asking(Kind kind, Pending* p, TimePoint now) {
    if (!p || !p->flags.asking) return;
    if (kind != Kind::Unlink && kind != Kind::SetNx && kind != Kind::Incr && kind != Kind::Xadd)
      return;
    detail::append_command(conn->out(), {"ASKING"});
    in_flight.push_back({Kind::Asking, p->id, 0, 0, 0, now, {}});
    ++p->prog.outstanding;
  }

  void on_connected(TimePoint now) {
    session.starting(kNever);  // each command has its own deadline
    if (!ep.password.empty()) {
      if (ep.user.empty())
        send(Kind::Auth, {"AUTH", ep.password}, now);
      else
        send(Kind::Auth, {"AUTH", ep.user, ep.password}, now);
    }
    std::string db = std::to_string(ep.db);
    if (ep.db != 0) send(Kind::Select, {"SELECT", db}, now);
    // Always sent: a reply proves the server answers before we call it Ready.
    send(Kind::SetName, {"CLIENT", "SETNAME", "pgbust"}, now);
    send(Kind::Role, {"ROLE"}, now);  // for the status line; refused is harmless
    tls_version = conn->tls_version();
    conn->flush();
  }

  void become_ready(TimePoint now) {
    session.up(now);
    ready_since = now;
    last_reply = now;
    if (!ever_ready) session.log(spdlog::level::info, "connected");
    ever_ready = true;
    if (queue.empty()) session.progress(now);  // nothing to apply: reachable is enough
  }

  // --- replies -------------------------------------------------------------------------

  Pending* find(std::uint64_t id) {
    auto it = std::lower_bound(queue.begin(), queue.end(), id,
                               [](const Pending& p, std::uint64_t i) { return p.id < i; });
    return it != queue.end() && it->id == id ? &*it : nullptr;
  }
  const Pending* find(std::uint64_t id) const { return const_cast<Impl*>(this)->find(id); }

  std::string command_text(const Expect& e) const {
    if (e.pass != 0) {
      const std::string of =
          pass && pass->id == e.pass
              ? fmt::format("keyspace pass for {} pattern{} ({})", pass->patterns.size(),
                            pass->patterns.size() == 1 ? "" : "s", pass->patterns.describe())
              : "keyspace pass";
      if (e.kind == Kind::Unlink) return fmt::format("UNLINK of {} keys of a {}", e.count, of);
      return fmt::format("{} of a {}", command_name(e.kind), of);
    }
    const Pending* p = find(e.batch);
    if (!p) return std::string(command_name(e.kind));
    const Batch& b = p->batch;
    switch (e.kind) {
      case Kind::Unlink:
        return fmt::format("UNLINK of {} keys", e.count);
      case Kind::SetNx:
      case Kind::Incr:
        return std::string(command_name(e.kind)) + " " + printable(b.bumps[e.index]);
      case Kind::Publish:
        return "PUBLISH to " + printable(b.publishes[e.index].first);
      case Kind::Xadd:
        return "XADD to " + printable(b.streams[e.index].first);
      default:
        return std::string(command_name(e.kind));
    }
  }

  // Handles one reply; false when it failed the connection (which is then gone).
  bool handle_reply(Reply r, TimePoint now) {
    if (in_flight.empty()) {
      fail("a reply nobody asked for: " + reply_text(r.get()), true, now);
      return false;
    }
    Expect e = std::move(in_flight.front());
    in_flight.pop_front();
    ++stats.commands;
    const TimePoint previous_reply = last_reply;
    last_reply = now;
    const bool error = r->type == REDIS_REPLY_ERROR;
    std::string_view text = error ? std::string_view(r->str, r->len) : std::string_view();
    if (e.kind == Kind::Query) {
      auto cb = std::move(queries_sent.front());
      queries_sent.pop_front();
      cb(r.get());
      return true;
    }
    Pending* p = e.batch != 0 ? find(e.batch) : nullptr;
    if (p) --p->prog.outstanding;
    // A command of a pass that ended (failed) since: nothing more to do with its reply.
    const bool stale_pass = e.pass != 0 && !(pass && pass->id == e.pass);
    if (e.pass != 0 && !stale_pass) --pass->outstanding;
    if (stale_pass && e.kind != Kind::Unlink) return true;
    // Cluster: the INCR after a SET NX that was redirected is redirected too (its key went
    // with the SET NX), and a redirected command's keys are the hook's now.
    if (p && e.kind == Kind::Incr && e.index < p->prog.redirected.size() &&
        p->prog.redirected[e.index])
      return true;
    if (error && redirect_hook && !stale_pass && is_redirection(text) && redirect(e, p, text))
      return true;
    bool harmless = false;  // an error reply that does not make the connection unusable
    switch (e.kind) {
      case Kind::Auth:
      case Kind::Select:
        if (error || r->type != REDIS_REPLY_STATUS) {
          handshake_failed(e.kind, r.get(), now);
          return false;
        }
        break;
      case Kind::Ping:
        if (error) {
          handshake_failed(e.kind, r.get(), now);
          return false;
        }
        break;
      case Kind::SetName:
        // Only a renamed/forbidden command is harmless; anything else (e.g. "max number of
        // clients reached", LOADING) means this connection is not usable.
        if (error && !(text.find("unknown command") != std::string_view::npos ||
                       text.starts_with("NOPERM"))) {
          handshake_failed(e.kind, r.get(), now);
          return false;
        }
        if (error)
          session.log(spdlog::level::debug, "CLIENT SETNAME refused: {}", reply_text(r.get()));
        harmless = error;
        break;
      case Kind::Incr:
        if (error && p && is_counter_error(text) && !p->prog.fixed[e.index]) {
          p->prog.fixed[e.index] = true;
          p->prog.fixups.push_back(e.index);
          session.log(spdlog::level::warn,
                      "bump key '{}' holds something that is not a counter ({}); "
                      "unlinking it and seeding a new counter",
                      printable(p->batch.bumps[e.index]), reply_text(r.get()));
          return true;
        }
        if (!error) ++stats.bumps;
        break;
      case Kind::Unlink:
        if (!error) {
          stats.unlinks += e.count;
          if (r->type == REDIS_REPLY_INTEGER) {
            stats.keys_deleted += static_cast<std::uint64_t>(r->integer);
            if (e.pass != 0) stats.pass_keys_deleted += static_cast<std::uint64_t>(r->integer);
          }
        }
        if (stale_pass) return true;
        break;
      case Kind::Scan:
        if (!error) return scan_reply(e, std::move(r), std::max(e.sent, previous_reply), now);
        break;
      case Kind::DbSize:
        // Only for the status line: a user not allowed DBSIZE still gets its passes.
        if (!error && r->type == REDIS_REPLY_INTEGER && pass)
          pass->dbsize = stats.pass_dbsize = static_cast<std::uint64_t>(r->integer);
        return true;
      case Kind::Role:
        role = !error && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                       r->element[0]->type == REDIS_REPLY_STRING
                   ? std::string(r->element[0]->str, r->element[0]->len)
                   : std::string();
        if (role == "slave") role = "replica";
        if (error) session.log(spdlog::level::debug, "ROLE refused: {}", reply_text(r.get()));
        harmless = error;  // only the status line misses it
        break;
      case Kind::Publish:
        if (!error) ++stats.publishes;
        break;
      case Kind::Xadd:
        if (!error) ++stats.stream_entries;
        break;
      case Kind::SetNx:
      case Kind::Asking:
      case Kind::Query:
        break;
    }
    if (error && !harmless) return command_failed(e, p, r.get(), now);
    if (state() == State::Handshake && in_flight.empty()) become_ready(now);
    return true;
  }

  // A cluster redirection of a command: the hook takes its keys over (true) or not. A batch's
  // UNLINK, SET NX or INCR goes to the hook with its part's tag. A keyspace pass's UNLINK
  // (its slot moved while the pass ran) goes to it once per batch of the pass whose patterns
  // match some of the keys, with that batch's tag, so each of those batches' bumps still come
  // after the keys it deletes.
  bool redirect(Expect& e, Pending* p, std::string_view text) {
    if (e.kind == Kind::Unlink && e.pass != 0) {
      bool any = false;
      for (Pending& q : queue) {
        if (!q.prog.started || q.prog.pass != e.pass) continue;
        Redirected r{Redirected::Delete, text, {}, q.flags.tag};
        for (const std::string& key : e.keys)
          if (std::any_of(q.batch.patterns.begin(), q.batch.patterns.end(),
                          [&](const std::string& pat) { return glob_match(pat, key); }))
            r.keys.push_back(key);
        if (r.keys.empty()) continue;
        if (!redirect_hook(r)) return false;
        any = true;
      }
      return any;
    }
    if (!p) return false;
    Redirected r{Redirected::Delete, text, {}, p->flags.tag};
    if (e.kind == Kind::Unlink) {
      r.keys = std::move(e.keys);
    } else if (e.kind == Kind::SetNx || e.kind == Kind::Incr) {
      r.what = Redirected::Bump;
      r.keys.push_back(p->batch.bumps[e.index]);
    } else if (e.kind == Kind::Xadd) {
      r.what = Redirected::Stream;
      const auto& [stream, message] = p->batch.streams[e.index];
      r.keys = {stream, message};
    } else {
      return false;
    }
    if (!redirect_hook(r)) return false;
    if (r.what == Redirected::Bump) p->prog.redirected[e.index] = true;
    return true;
  }

  // AUTH, SELECT, CLIENT SETNAME or PING refused: the connection is not usable. An access
  // error (NOAUTH, WRONGPASS, NOPERM) says so and names the command, never the password.
  void handshake_failed(Kind kind, const redisReply* r, TimePoint now) {
    std::string msg = std::string(command_name(kind)) + " failed: " + reply_text(r);
    const bool access =
        r->type == REDIS_REPLY_ERROR && is_access_error(std::string_view(r->str, r->len));
    if (access)
      msg += " (" + access_advice(std::string_view(r->str, r->len), ep.user, acl_name(kind)) + ")";
    fail(msg, true, now, access);
  }

  void note_error(ErrorClass cls, Kind kind) {
    ++stats.errors_by_class[{std::string(to_string(cls)), std::string(command_name(kind))}];
  }

  // A batch command answered with an error. Transient (the server cannot serve now):
  // reconnect with backoff and apply the batch again. Persistent (OOM, NOPERM, ...): send
  // nothing more for this batch, and once its replies are in set it aside and go on with
  // later ones, so one failing command does not stop every later invalidation. Their done()
  // may then run first; the pipeline still confirms in order. A pass command refused this
  // way fails every batch whose patterns are in that pass, and the pass ends. False when the
  // connection is gone.
  bool command_failed(const Expect& e, Pending* p, const redisReply* r, TimePoint now) {
    const std::string_view text(r->str, r->len);
    const ErrorClass cls = classify_error(text);
    note_error(cls, e.kind);
    std::string msg =
        fmt::format("{} failed: {} ({}", command_text(e), reply_text(r), to_string(cls));
    if (is_access_error(text))
      msg += "; " + access_advice(text, ep.user, acl_name(e.kind));
    else if (auto hint = error_hint(text); !hint.empty())
      msg += fmt::format("; {}", hint);
    msg += ")";
    if (cls == ErrorClass::Transient || (!p && e.pass == 0)) {  // no batch: a handshake command
      fail(msg, false, now);
      return false;
    }
    ++stats.errors;
    session.count_error(msg);
    auto mark = [&](Progress& g) {
      if (e.kind == Kind::Unlink || e.kind == Kind::Scan) g.deletes_failed = true;
      if (g.failed.empty()) g.failed = msg;
    };
    if (e.pass != 0) {
      for (Pending& q : queue)
        if (q.prog.started && q.prog.pass == e.pass) mark(q.prog);
      end_pass();
    } else if (p) {
      mark(p->prog);
    }
    return true;
  }

  // A SCAN page of the running pass: its keys matched against the pass's patterns, the
  // matches queued for UNLINK, and SCAN COUNT adapted to how long the call took.
  bool scan_reply(const Expect& e, Reply r, TimePoint from, TimePoint now) {
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY;
    for (std::size_t i = 0; ok && i < r->element[1]->elements; ++i)
      ok = r->element[1]->element[i]->type == REDIS_REPLY_STRING;
    if (!ok) {
      fail(command_text(e) + ": unexpected reply " + reply_text(r.get()), false, now);
      return false;
    }
    Pass& s = *pass;
    s.scanning = false;
    s.cursor.assign(r->element[0]->str, r->element[0]->len);
    s.last_page = s.cursor == "0";
    const redisReply* keys = r->element[1];
    const std::size_t before = s.doomed.size();
    for (std::size_t i = 0; i < keys->elements; ++i) {
      std::string_view key(keys->element[i]->str, keys->element[i]->len);
      if (s.patterns.matches(key)) s.doomed.emplace_back(key);
    }
    if (cluster_node)  // UNLINK one slot at a time: the page's matches sorted by slot
      std::stable_sort(
          s.doomed.begin() + static_cast<std::ptrdiff_t>(before), s.doomed.end(),
          [](const std::string& x, const std::string& y) { return key_slot(x) < key_slot(y); });
    // With MATCH the server visits about COUNT keys per call but returns only the matches:
    // count what it visited, so progress against DBSIZE means something.
    const std::size_t visited =
        s.match.empty() ? keys->elements : std::max(keys->elements, e.count);
    s.scanned += visited;
    stats.pass_scanned = s.scanned;
    stats.pass_keys_scanned += visited;
    const auto took = now - from;
    if (took > kScanTarget)
      scan_count = std::max(kScanCountMin, scan_count / 2);
    else if (took < kScanTarget / 4)
      scan_count = std::min(kScanCountMax, scan_count + scan_count / 2);
    stats.scan_count = scan_count;
    return true;
  }

  // --- keyspace passes -----------------------------------------------------------------

  // Hands a started batch's patterns to the next pass (the running one already walks part of
  // the keyspace, so a pattern arriving now joins the one after it).
  void join_pass(Pending& p) {
    Progress& g = p.prog;
    g.joined = true;
    if (p.deletes_applied || p.batch.patterns.empty()) return;
    for (const std::string& pat : p.batch.patterns)
      if (next_set.insert(pat).second) next_patterns.push_back(pat);
    g.pass = pass_counter + 1;
  }

  bool pass_pending(const Progress& g) const { return g.pass > passes_done; }

  void start_pass(TimePoint now) {
    pass = Pass{};  // not emplace(): see Progress
    Pass& s = *pass;
    s.id = ++pass_counter;
    for (const std::string& pat : next_patterns) s.patterns.add(pat);
    next_patterns.clear();
    next_set.clear();
    if (std::string prefix = s.patterns.common_prefix(); !prefix.empty())
      s.match = escape_glob(prefix) + "*";
    s.started = now;
    stats.pass_running = true;
    stats.pass_scanned = 0;
    stats.pass_dbsize = 0;
    stats.pass_patterns = s.patterns.size();
    send_pass(Kind::DbSize, {"DBSIZE"}, now);
    session.log(spdlog::level::debug, "keyspace pass {} started for {} pattern(s): {}", s.id,
                s.patterns.size(), s.patterns.describe());
  }

  void send_pass(Kind kind, std::initializer_list<std::string_view> args, TimePoint now,
                 std::size_t count = 0) {
    detail::append_command(conn->out(), args);
    in_flight.push_back({kind, 0, pass->id, 0, count, now, {}});
    ++pass->outstanding;
  }

  void finish_pass(TimePoint now) {
    const Pass& s = *pass;
    passes_done = s.id;
    ++stats.passes;
    for (const Pending& q : queue)
      if (q.prog.started && q.prog.pass == s.id) stats.patterns += q.batch.patterns.size();
    const double took = std::chrono::duration<double>(now - s.started).count();
    session.log(spdlog::level::debug, "keyspace pass {} done: {} keys scanned in {:.3f}s", s.id,
                s.scanned, took);
    end_pass();
    if (on_pass) on_pass(took);
  }

  // Sends what the running pass allows (its SCAN and the UNLINKs of what it matched), starts
  // the next one when the running one ends; true when a pass ended (call again).
  bool pump_pass(TimePoint now) {
    if (!pass) {
      if (next_patterns.empty() || state() != State::Ready) return false;
      start_pass(now);
    }
    Pass& s = *pass;
    auto doomed_at = [&](std::size_t i) { return std::string_view(s.doomed[i]); };
    while (s.doomed_pos < s.doomed.size() && room(1)) {
      std::size_t end = chunk_end(s.doomed_pos, s.doomed.size(), doomed_at, nullptr);
      send_unlink(s.doomed_pos, end, doomed_at, now, nullptr, s.id);
      s.doomed_pos = end;
    }
    if (s.doomed_pos == s.doomed.size()) {
      s.doomed.clear();
      s.doomed_pos = 0;
    }
    if (!s.scanning && !s.last_page && room(1)) {
      const std::string count = std::to_string(scan_count);
      if (s.match.empty())
        send_pass(Kind::Scan, {"SCAN", s.cursor, "COUNT", count}, now, scan_count);
      else
        send_pass(Kind::Scan, {"SCAN", s.cursor, "MATCH", s.match, "COUNT", count}, now,
                  scan_count);
      s.scanning = true;
    }
    if (s.last_page && !s.scanning && s.doomed.empty() && s.outstanding == 0) {
      finish_pass(now);
      return true;
    }
    return false;
  }

  // --- the batch applier ---------------------------------------------------------------

  bool room(std::size_t n) const {
    return in_flight.empty() || in_flight.size() + n <= opt.max_in_flight;
  }

  // UNLINK keys [begin, end) of a range given by an accessor; one command, of batch `p` or
  // of pass `pass_id`.
  template <typename KeyAt>
  void send_unlink(std::size_t begin, std::size_t end, KeyAt key_at, TimePoint now, Pending* p,
                   std::uint64_t pass_id = 0) {
    asking(Kind::Unlink, p, now);
    argv.clear();
    argv.push_back("UNLINK");
    for (std::size_t i = begin; i < end; ++i) argv.push_back(key_at(i));
    detail::append_command(conn->out(), argv);
    in_flight.push_back({Kind::Unlink, p ? p->id : 0, pass_id, 0, end - begin, now, {}});
    if (cluster_node) in_flight.back().keys.assign(argv.begin() + 1, argv.end());
    if (p) ++p->prog.outstanding;
    if (pass_id != 0) ++pass->outstanding;
  }

  // Where an UNLINK chunk from `begin` ends: at most unlink_chunk keys; on a cluster node
  // one hash slot (the keys come sorted by slot) or one key for a part that asks for that.
  template <typename KeyAt>
  std::size_t chunk_end(std::size_t begin, std::size_t size, KeyAt key_at, const Pending* p) const {
    if (p && p->flags.single_keys) return begin + 1;
    std::size_t end = std::min(size, begin + opt.unlink_chunk);
    if (!cluster_node) return end;
    const std::uint16_t slot = key_slot(key_at(begin));
    for (std::size_t i = begin + 1; i < end; ++i)
      if (key_slot(key_at(i)) != slot) return i;
    return end;
  }

  // A bump of batch `i` must wait while an earlier batch's (or its own) keyspace pass that
  // may delete its key has not finished: sent before, the pass's UNLINK could land after the
  // INCR and delete the counter just bumped (issue 14 part 4).
  bool bump_blocked(std::size_t i, std::string_view key) const {
    for (std::size_t j = 0; j <= i; ++j) {
      const Pending& q = queue[j];
      if (!q.prog.started || !pass_pending(q.prog)) continue;
      for (const std::string& pat : q.batch.patterns)
        if (glob_match(pat, key)) return true;
    }
    return false;
  }

  void start_batch(Pending& p) {
    p.prog = Progress{};
    p.prog.started = true;
    p.prog.fixed.assign(p.batch.bumps.size(), false);
    p.prog.redirected.assign(p.batch.bumps.size(), false);
    if (p.deletes_applied) p.prog.del_pos = p.batch.deletes.size();  // retried for the rest
  }

  // Sends what batch `i` allows now. Its order: exact UNLINKs; its patterns handed to the
  // next keyspace pass; once that pass has ended, its bumps (deletes before bumps, so a
  // widened bump deletes rev:...:* first and then INCRs the new counter, as `explain`
  // prints); once every one of its commands has been answered, its publishes, then its
  // stream entries. Its done() runs once those are answered. True when it completed or was
  // set aside (the queue changed: call again).
  bool step(std::size_t i, TimePoint now) {
    Pending& p = queue[i];
    Progress& g = p.prog;
    const Batch& b = p.batch;
    if (!g.failed.empty()) {
      if (g.outstanding > 0) return false;  // its replies first
      set_aside(i, now);
      return true;
    }
    const std::string seed = unix_micros();
    while (!g.fixups.empty() && room(3)) {
      std::size_t k = g.fixups.back();
      std::string_view key = b.bumps[k];
      g.fixups.pop_back();
      send_unlink(
          0, 1, [&](std::size_t) { return key; }, now, &p);
      send(Kind::SetNx, {"SET", key, seed, "NX"}, now, k, &p);
      send(Kind::Incr, {"INCR", key}, now, k, &p);
    }
    auto delete_at = [&](std::size_t k) { return std::string_view(b.deletes[k]); };
    while (g.del_pos < b.deletes.size() && room(1)) {
      std::size_t end = chunk_end(g.del_pos, b.deletes.size(), delete_at, &p);
      send_unlink(g.del_pos, end, delete_at, now, &p);
      g.del_pos = end;
    }
    if (g.del_pos < b.deletes.size()) return false;
    if (!g.joined) join_pass(p);
    if (pass_pending(g)) return false;  // deletes (its pass too) before bumps
    while (g.bump_pos < b.bumps.size()) {
      std::string_view key = b.bumps[g.bump_pos];
      if (!room(2) || bump_blocked(i, key)) return false;
      send(Kind::SetNx, {"SET", key, seed, "NX"}, now, g.bump_pos, &p);
      send(Kind::Incr, {"INCR", key}, now, g.bump_pos, &p);
      ++g.bump_pos;
    }
    // Publish only once everything else of the batch has been answered: subscribers re-read
    // after the message, so its deletes, its pass and its bumps must be in Redis by then.
    if (!g.publishing) {
      if (g.outstanding > 0 || !g.fixups.empty()) return false;
      g.publishing = true;
    }
    while (g.pub_pos < b.publishes.size() && room(1)) {
      const auto& [channel, message] = b.publishes[g.pub_pos];
      send(Kind::Publish, {"PUBLISH", channel, message}, now, g.pub_pos, &p);
      ++g.pub_pos;
    }
    // Then its stream entries (XADD), like the publishes: after everything of its own batch,
    // never held up by another batch's pass.
    const std::size_t messages = b.publishes.size() + b.streams.size();
    while (g.pub_pos < messages && room(1)) {
      const std::size_t k = g.pub_pos - b.publishes.size();
      const auto& [stream, message] = b.streams[k];
      send(Kind::Xadd, {"XADD", stream, "MAXLEN", "~", stream_maxlen, "*", "message", message}, now,
           k, &p);
      ++g.pub_pos;
    }
    if (g.pub_pos == messages && g.outstanding == 0) return complete(i, now);
    return false;
  }

  // A batch waits only for a keyspace pass: nothing of it is in flight or could be sent now.
  bool waits_for_pass(std::size_t i) const {
    const Pending& p = queue[i];
    const Progress& g = p.prog;
    if (!g.started || !g.failed.empty() || g.outstanding > 0 || !g.fixups.empty()) return false;
    if (g.del_pos < p.batch.deletes.size() || !g.joined) return false;
    if (pass_pending(g)) return true;
    return g.bump_pos < p.batch.bumps.size() && bump_blocked(i, p.batch.bumps[g.bump_pos]);
  }

  // The current attempt met a persistent error and every reply of it is in: retry the batch
  // later, with a delay growing per failure, and let later batches go first.
  void set_aside(std::size_t i, TimePoint now) {
    Pending& p = queue[i];
    const Progress& g = p.prog;
    p.deletes_applied =
        p.deletes_applied ||
        (!g.deletes_failed && g.del_pos == p.batch.deletes.size() && g.joined && !pass_pending(g));
    if (p.failures == 0) ++stats.failing_batches;
    p.failures = std::min(p.failures + 1, 30);
    Clock::duration delay = opt.backoff_min;
    for (int k = 1; k < p.failures && delay < opt.backoff_max; ++k) delay *= 2;
    delay = std::min<Clock::duration>(delay, opt.backoff_max);
    p.retry_at = now + delay;
    ++deferred.count;
    const bool first = !deferred.since;
    if (first || now - deferred.logged >= opt.log_interval) {
      if (first) deferred.since = now;
      deferred.logged = now;
      session.log(spdlog::level::err,
                  "{}; the batch is retried in {} (attempt {}{}), later batches go on; "
                  "nothing after it is confirmed until it succeeds",
                  g.failed, seconds(delay), p.failures,
                  first ? "" : fmt::format(", failing for {}", seconds(now - *deferred.since)));
    } else {
      session.log(spdlog::level::debug, "{}", g.failed);
    }
    p.prog = Progress{};
  }

  // Sends what the batches and the keyspace pass allow; true when it completed or set aside
  // a batch, or ended a pass (call again). Batches start in queue order, each as soon as
  // Redis is ready (a set-aside one once its retry is due), and run side by side: a later
  // batch's exact deletes, bumps, publishes and stream entries go while an earlier one waits
  // for its pass. The pass is served first so it keeps going under a stream of small
  // batches; it has at most a SCAN and one page's UNLINKs in flight, so later commands queue
  // behind little.
  bool pump(TimePoint now) {
    const bool ready = state() == State::Ready;
    if (ready && pump_pass(now)) return true;
    bool earlier_waiting = false;  // an earlier batch not set aside is still queued
    for (std::size_t i = 0; i < queue.size(); ++i) {
      Pending& p = queue[i];
      if (!p.prog.started) {
        if (p.failures > 0) {  // set aside: never holds later batches back
          if (!ready || p.retry_at > now) continue;
        } else if (p.batch.empty()) {
          if (!earlier_waiting) return complete(i, now);  // in order, even while Redis is down
          continue;
        } else if (!ready) {
          break;  // in order: later ones wait too
        }
        start_batch(p);
      }
      if (p.failures == 0) earlier_waiting = true;
      if (step(i, now)) return true;
    }
    // Batches may have handed patterns over just now: start the pass without waiting.
    return ready && !pass && !next_patterns.empty() && pump_pass(now);
  }

  bool complete(std::size_t i, TimePoint now) {
    Pending p = std::move(queue[i]);
    queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(i));
    if (!p.batch.empty()) session.progress(now);
    if (p.failures > 0) --stats.failing_batches;
    if (p.failures > 0 && deferred.since &&
        std::none_of(queue.begin(), queue.end(), [](const Pending& q) { return q.failures > 0; })) {
      spdlog::info(
          "redis {}: every batch set aside is applied now, after {} failed attempts "
          "over {}",
          ep.describe(), deferred.count, seconds(now - *deferred.since));
      deferred = Streak{};
    }
    if (p.done) p.done();
    return true;
  }

  // True when a batch handed over now would start at once and nothing handed over can make
  // progress without Redis answering a keyspace pass: every batch still queued is set aside
  // and not yet due, or waits only for a pass (or none is queued). The pipeline then hands
  // over what it accumulated, so a long pass does not hold later transactions back.
  bool idle(TimePoint now) const {
    const bool ready = state() == State::Ready;
    for (std::size_t i = 0; i < queue.size(); ++i) {
      const Pending& p = queue[i];
      if (!p.prog.started && p.failures > 0 && p.retry_at > now) continue;
      if (ready && waits_for_pass(i)) continue;
      return false;
    }
    return true;
  }

  // Runs the applier until it waits on Redis, then sends what it queued.
  void drive(TimePoint now) {
    for (int round = 0; round < 1000 && !closed && pump(now); ++round) {
    }
    if (conn && state() == State::Ready && !queries.empty()) send_queries(now);
    if (conn && state() == State::Ready && conn->want_write()) {
      try {
        conn->flush();
      } catch (const ConnectionError& e) {
        fail(e.what(), true, now);
      }
    }
  }

  // --- loop callbacks ------------------------------------------------------------------

  void on_ready(short revents, TimePoint now) {
    try {
      if (state() == State::Connecting) {
        if (conn->finish_connect()) on_connected(now);
        return;
      }
      if ((revents & (POLLIN | POLLERR | POLLHUP)) || conn->read_wants_write()) {
        for (int i = 0; i < 16 && conn && conn->read(); ++i) {
          while (conn) {
            Reply r = conn->next_reply();
            if (!r) break;
            if (!handle_reply(std::move(r), now)) return;
          }
          drive(now);
        }
      }
      if (conn && (revents & POLLOUT)) conn->flush();
      drive(now);
    } catch (const ConnectionError& e) {
      if (state() == State::Ready && in_flight.empty() && !busy() &&
          now - ready_since >= kIdleReconnectAfter) {
        // An idle connection closed (server timeout, restart): reconnect at once, no outage yet.
        session.log(spdlog::level::info, "{}; reconnecting", e.what());
        drop_connection();
        session.reconnect_now();
        return;
      }
      fail(e.what(), true, now);
    }
  }

  void on_timer(TimePoint now) {
    if (closed) return;
    switch (state()) {
      case State::Disconnected:
        start_connect(now);
        break;
      case State::BackingOff:
        if (session.due(now)) start_connect(now);
        break;
      case State::Connecting:
        if (session.expired(now) && conn && conn->resolving())
          fail(fmt::format("resolving '{}' timed out after {}ms", ep.host,
                           opt.connect_timeout.count()),
               true, now);
        else if (session.expired(now))
          fail(conn && conn->handshaking() && !conn->connecting_tcp()
                   ? fmt::format("TLS handshake timed out after {}ms (wrong protocol on the "
                                 "port? a plain-text Redis does not answer the TLS hello; then "
                                 "use redis://)",
                                 opt.connect_timeout.count())
                   : fmt::format("connect timed out after {}ms", opt.connect_timeout.count()),
               true, now);
        break;
      case State::Handshake:
      case State::Ready:
        if (!in_flight.empty() && now >= in_flight.front().sent + opt.command_timeout) {
          fail(fmt::format("no reply to {} within {}ms, connection considered broken",
                           command_name(in_flight.front().kind), opt.command_timeout.count()),
               true, now);
        } else if (state() == State::Ready && in_flight.empty() && !busy() &&
                   now >= last_reply + opt.ping_interval) {
          send(Kind::Ping, {"PING"}, now);
          try {
            conn->flush();
          } catch (const ConnectionError& e) {
            fail(e.what(), true, now);
          }
        }
        break;
    }
    drive(now);
  }

  // When pump() will have something new to start; kNever when only new work, a reply or a
  // reconnect can bring it.
  TimePoint next_batch_time() const {
    const bool ready = state() == State::Ready;
    TimePoint t = kNever;
    bool earlier_waiting = false;
    for (const Pending& p : queue) {
      if (p.prog.started) {
        if (p.failures == 0) earlier_waiting = true;
        continue;
      }
      if (p.failures > 0) {
        if (ready) t = std::min(t, p.retry_at);
        continue;
      }
      if (p.batch.empty()) {
        if (!earlier_waiting) return TimePoint{};
        continue;
      }
      if (ready) return TimePoint{};
      break;
    }
    return t;
  }

  TimePoint deadline() const {
    if (closed) return kNever;
    if (!queries.empty() && state() == State::Ready) return TimePoint{};
    const TimePoint work = next_batch_time();
    return std::min(work, connection_deadline());
  }

  TimePoint connection_deadline() const {
    switch (state()) {
      case State::Disconnected:
        return TimePoint{};
      case State::BackingOff:
      case State::Connecting:
        return session.deadline();
      case State::Handshake:
        return in_flight.empty() ? kNever : in_flight.front().sent + opt.command_timeout;
      case State::Ready:
        return in_flight.empty() ? last_reply + opt.ping_interval
                                 : in_flight.front().sent + opt.command_timeout;
    }
    return kNever;
  }
};

Target::Target(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Target::Target(Options options, Endpoint endpoint)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(endpoint))) {
  impl_->cluster_node = true;
}

Target::~Target() {
  close();
}

void Target::on_redirect(std::function<bool(const Redirected&)> hook) {
  impl_->redirect_hook = std::move(hook);
}

void Target::apply(Batch batch, std::function<void()> done) {
  apply(std::move(batch), std::move(done), PartFlags{});
}

void Target::apply(Batch batch, std::function<void()> done, PartFlags flags) {
  auto& p = impl_->queue.emplace_back();
  p.batch = std::move(batch);
  p.done = std::move(done);
  p.id = impl_->next_id++;
  p.flags = flags;
}

void Target::query(std::vector<std::string> argv, std::function<void(const redisReply*)> reply) {
  if (impl_->closed) {
    reply(nullptr);
    return;
  }
  impl_->queries.emplace_back(std::move(argv), std::move(reply));
}

void Target::on_pass(std::function<void(double seconds)> observe) {
  impl_->on_pass = std::move(observe);
}

std::size_t Target::queued() const {
  return impl_->queue.size();
}
bool Target::idle() const {
  return impl_->idle(Clock::now());
}
State Target::state() const {
  return impl_->state();
}
const Stats& Target::stats() const {
  return impl_->stats;
}
std::string Target::last_error() const {
  const std::string& e = impl_->session.last_error();
  return e.empty() ? e : "redis " + impl_->ep.describe() + ": " + e;
}
std::string Target::describe() const {
  return impl_->ep.describe();
}
std::string Target::name() const {
  return impl_->opt.name;
}
std::string Target::role() const {
  return impl_->role;
}
bool Target::tls() const {
  return impl_->ep.tls;
}
std::string Target::tls_version() const {
  return impl_->tls_version;
}
const Endpoint& Target::endpoint() const {
  return impl_->ep;
}

int Target::fd() const {
  return impl_->conn ? impl_->conn->fd() : -1;
}

short Target::events() const {
  switch (impl_->state()) {
    case State::Connecting:
      return impl_->conn ? impl_->conn->connect_events() : POLLOUT;
    case State::Handshake:
    case State::Ready:
      return static_cast<short>(POLLIN | (impl_->conn->want_write() ? POLLOUT : 0));
    default:
      return 0;
  }
}

void Target::on_ready(short revents) {
  if (impl_->closed || !impl_->conn) return;
  impl_->on_ready(revents, Clock::now());
}

TimePoint Target::deadline() const {
  return impl_->deadline();
}

void Target::on_timer(TimePoint now) {
  impl_->on_timer(now);
}

void add_counters(Stats& to, const Stats& from) {
  to.commands += from.commands;
  to.errors += from.errors;
  for (const auto& [k, v] : from.errors_by_class) to.errors_by_class[k] += v;
  to.keys_deleted += from.keys_deleted;
  to.unlinks += from.unlinks;
  to.patterns += from.patterns;
  to.passes += from.passes;
  to.pass_keys_scanned += from.pass_keys_scanned;
  to.pass_keys_deleted += from.pass_keys_deleted;
  to.bumps += from.bumps;
  to.publishes += from.publishes;
  to.stream_entries += from.stream_entries;
  to.reconnects += from.reconnects;
  to.failovers += from.failovers;
}

void Target::reread_password() {
  impl_->reread_password(true);
}

void Target::close() noexcept {
  if (!impl_ || impl_->closed) return;
  impl_->closed = true;
  impl_->drop_connection();
  impl_->session.stop_retrying();
  impl_->session.stop();
}

}  // namespace pgbust::redis
