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

#include "pgbust/core/error.hpp"
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

// A command sent and not yet answered. `index`: bump / pattern / publish index in the batch.
struct Expect {
  Kind kind;
  std::size_t index = 0;
  std::size_t count = 0;  // keys in an UNLINK
  TimePoint sent;
  std::vector<std::string> keys;  // a cluster node's UNLINK: its keys, for a redirection
};

constexpr std::size_t kMaxScans = 8;  // pattern SCAN loops running side by side
// An idle connection closed after being up this long is reopened at once; one closed sooner
// counts as a failure (backoff), so a server that drops every connection is not hammered.
constexpr auto kIdleReconnectAfter = std::chrono::seconds(1);

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

// At namespace scope, not nested in Impl: clang 14 cannot default-construct a nested class
// with member initializers (std::optional<Attempt>::emplace) inside its enclosing class.
// One pattern's SCAN loop.
struct ScanSlot {
  std::size_t pattern = 0;
  std::string cursor = "0";
  bool scanning = false;   // a SCAN is in flight
  bool last_page = false;  // the server said cursor 0
  Reply page;              // the last SCAN reply; its keys not yet UNLINKed from key_pos
  std::size_t key_pos = 0;
  std::size_t page_keys() const { return page ? page->element[1]->elements : 0; }
};
// The current batch's progress on the current connection; dropped on any failure.
struct Attempt {
  std::size_t batch = 0;  // its index in the queue
  std::size_t del_pos = 0;
  std::size_t next_pattern = 0;
  std::vector<ScanSlot> scans;
  std::size_t bump_pos = 0;
  std::vector<std::size_t> fixups;  // bumps to UNLINK and re-seed
  std::vector<bool> fixed;          // bumps re-seeded once already
  std::vector<bool> redirected;     // cluster: bumps handed to another node
  bool publishing = false;
  std::size_t pub_pos = 0;
  bool deletes_failed = false;  // an UNLINK or SCAN of this attempt was refused
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
    PartFlags flags;               // cluster: ASKING, one key per UNLINK, the part's tag
  };
  Options opt;
  Endpoint ep;
  std::unique_ptr<detail::TlsContext> tls;  // rediss://: loaded once, a session per connection
  Session session;
  bool closed = false;
  bool ever_ready = false;
  std::unique_ptr<Conn> conn;
  std::deque<Expect> in_flight;
  TimePoint ready_since{};
  TimePoint last_reply{};  // an idle connection is PINGed so an outage shows without traffic
  std::deque<Pending> queue;
  std::optional<Attempt> attempt;
  Stats stats;
  Streak deferred;                     // batches set aside after persistent errors
  std::vector<std::string_view> argv;  // scratch for UNLINK chunks
  std::string scan_count;
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
    scan_count = std::to_string(opt.scan_count);
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

  void drop_connection() noexcept {
    conn.reset();
    in_flight.clear();
    attempt.reset();
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
    while (!queries.empty() && in_flight.size() < opt.max_in_flight) {
      std::vector<std::string_view> args(queries.front().first.begin(),
                                         queries.front().first.end());
      detail::append_command(conn->out(), args);
      in_flight.push_back({Kind::Query, 0, 0, now, {}});
      queries_sent.push_back(std::move(queries.front().second));
      queries.pop_front();
    }
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

  void start_connect(TimePoint now) {
    session.connecting(now, opt.connect_timeout);
    stats.reconnects = session.reconnects();
    try {
      conn = std::make_unique<Conn>(ep, tls.get());
      if (!conn->connecting()) on_connected(now);
    } catch (const ConnectionError& e) {
      fail(e.what(), true, now);
    }
  }

  void send(Kind kind, std::initializer_list<std::string_view> args, TimePoint now,
            std::size_t index = 0) {
    asking(kind, now);
    detail::append_command(conn->out(), args);
    in_flight.push_back({kind, index, 0, now, {}});
  }

  // An ASK redirection's command is preceded by ASKING (it admits one command).
  void asking(Kind kind, TimePoint now) {
    if (!attempt || !current().flags.asking) return;
    if (kind != Kind::Unlink && kind != Kind::SetNx && kind != Kind::Incr && kind != Kind::Xadd)
      return;
    detail::append_command(conn->out(), {"ASKING"});
    in_flight.push_back({Kind::Asking, 0, 0, now, {}});
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

  Pending& current() { return queue[attempt->batch]; }

  std::string command_text(const Expect& e) const {
    if (!attempt) return std::string(command_name(e.kind));
    const Batch& b = queue[attempt->batch].batch;
    switch (e.kind) {
      case Kind::Unlink:
        return fmt::format("UNLINK of {} keys", e.count);
      case Kind::Scan:
        return "SCAN MATCH " + printable(b.patterns[e.index]);
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
    last_reply = now;
    const bool error = r->type == REDIS_REPLY_ERROR;
    std::string_view text = error ? std::string_view(r->str, r->len) : std::string_view();
    if (e.kind == Kind::Query) {
      auto cb = std::move(queries_sent.front());
      queries_sent.pop_front();
      cb(r.get());
      return true;
    }
    if (attempt && e.kind == Kind::Incr && attempt->redirected[e.index]) return true;
    if (error && redirect_hook && attempt && is_redirection(text) && redirect(e, text)) return true;
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
        if (error && is_counter_error(text) && !attempt->fixed[e.index]) {
          attempt->fixed[e.index] = true;
          attempt->fixups.push_back(e.index);
          session.log(spdlog::level::warn,
                      "bump key '{}' holds something that is not a counter ({}); "
                      "unlinking it and seeding a new counter",
                      printable(current().batch.bumps[e.index]), reply_text(r.get()));
          return true;
        }
        if (!error) ++stats.bumps;
        break;
      case Kind::Unlink:
        if (!error) {
          stats.unlinks += e.count;
          if (r->type == REDIS_REPLY_INTEGER)
            stats.keys_deleted += static_cast<std::uint64_t>(r->integer);
        }
        break;
      case Kind::Scan:
        if (!error) return scan_reply(e, std::move(r), now);
        break;
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
    if (error && !harmless) return command_failed(e, r.get(), now);
    if (state() == State::Handshake && in_flight.empty()) become_ready(now);
    return true;
  }

  // A cluster redirection of a batch command: the hook takes its keys over (true) or not.
  bool redirect(Expect& e, std::string_view text) {
    Redirected r{Redirected::Delete, text, {}, current().flags.tag};
    if (e.kind == Kind::Unlink) {
      r.keys = std::move(e.keys);
    } else if (e.kind == Kind::SetNx || e.kind == Kind::Incr) {
      r.what = Redirected::Bump;
      r.keys.push_back(current().batch.bumps[e.index]);
    } else if (e.kind == Kind::Xadd) {
      r.what = Redirected::Stream;
      const auto& [stream, message] = current().batch.streams[e.index];
      r.keys = {stream, message};
    } else {
      return false;
    }
    if (!redirect_hook(r)) return false;
    if (r.what == Redirected::Bump) attempt->redirected[e.index] = true;
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
  // reconnect with backoff and apply the batch again. Persistent (OOM, NOPERM, ...): finish
  // this attempt without sending more, then set the batch aside and go on with later ones,
  // so one failing command does not stop every later invalidation. Their done() may then
  // run first; the pipeline still confirms in order. False when the connection is gone.
  bool command_failed(const Expect& e, const redisReply* r, TimePoint now) {
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
    if (cls == ErrorClass::Transient || !attempt) {  // no batch: a handshake command
      fail(msg, false, now);
      return false;
    }
    ++stats.errors;
    session.count_error(msg);
    if (e.kind == Kind::Unlink || e.kind == Kind::Scan) attempt->deletes_failed = true;
    if (attempt->failed.empty()) attempt->failed = std::move(msg);
    return true;
  }

  bool scan_reply(const Expect& e, Reply r, TimePoint now) {
    if (!attempt->failed.empty()) return true;  // being set aside: the page is not needed
    auto slot = std::find_if(attempt->scans.begin(), attempt->scans.end(),
                             [&](const ScanSlot& s) { return s.pattern == e.index; });
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              r->element[0]->type == REDIS_REPLY_STRING &&
              r->element[1]->type == REDIS_REPLY_ARRAY && slot != attempt->scans.end();
    for (std::size_t i = 0; ok && i < r->element[1]->elements; ++i)
      ok = r->element[1]->element[i]->type == REDIS_REPLY_STRING;
    if (!ok) {
      fail(command_text(e) + ": unexpected reply " + reply_text(r.get()), false, now);
      return false;
    }
    if (cluster_node) {  // UNLINK one slot at a time: sort the page's keys by slot
      redisReply** k = r->element[1]->element;
      std::stable_sort(k, k + r->element[1]->elements,
                       [](const redisReply* x, const redisReply* y) {
                         return key_slot({x->str, x->len}) < key_slot({y->str, y->len});
                       });
    }
    slot->scanning = false;
    slot->cursor.assign(r->element[0]->str, r->element[0]->len);
    slot->last_page = slot->cursor == "0";
    slot->page = std::move(r);
    slot->key_pos = 0;
    return true;
  }

  // --- the batch applier ---------------------------------------------------------------

  // UNLINK keys [begin, end) of a range given by an accessor; one command.
  template <typename KeyAt>
  void send_unlink(std::size_t begin, std::size_t end, KeyAt key_at, TimePoint now) {
    asking(Kind::Unlink, now);
    argv.clear();
    argv.push_back("UNLINK");
    for (std::size_t i = begin; i < end; ++i) argv.push_back(key_at(i));
    detail::append_command(conn->out(), argv);
    in_flight.push_back({Kind::Unlink, 0, end - begin, now, {}});
    if (cluster_node) in_flight.back().keys.assign(argv.begin() + 1, argv.end());
  }

  // Where an UNLINK chunk from `begin` ends: at most unlink_chunk keys; on a cluster node
  // one hash slot (the keys come sorted by slot) or one key for a part that asks for that.
  template <typename KeyAt>
  std::size_t chunk_end(std::size_t begin, std::size_t size, KeyAt key_at) const {
    if (attempt && current_flags().single_keys) return begin + 1;
    std::size_t end = std::min(size, begin + opt.unlink_chunk);
    if (!cluster_node) return end;
    const std::uint16_t slot = key_slot(key_at(begin));
    for (std::size_t i = begin + 1; i < end; ++i)
      if (key_slot(key_at(i)) != slot) return i;
    return end;
  }
  const PartFlags& current_flags() const { return queue[attempt->batch].flags; }

  // Sends the next command of one pattern loop; false when no pattern has one to send.
  bool pattern_step(const Batch& b, TimePoint now) {
    Attempt& a = *attempt;
    for (;;) {
      while (a.scans.size() < kMaxScans && a.next_pattern < b.patterns.size())
        a.scans.emplace_back().pattern = a.next_pattern++;
      for (ScanSlot& s : a.scans) {
        if (s.scanning) continue;
        if (s.key_pos < s.page_keys()) {
          redisReply* keys = s.page->element[1];
          auto key_at = [&](std::size_t i) {
            return std::string_view(keys->element[i]->str, keys->element[i]->len);
          };
          std::size_t end = chunk_end(s.key_pos, s.page_keys(), key_at);
          send_unlink(s.key_pos, end, key_at, now);
          s.key_pos = end;
          return true;
        }
        if (s.last_page) continue;
        s.page.reset();
        send(Kind::Scan, {"SCAN", s.cursor, "MATCH", b.patterns[s.pattern], "COUNT", scan_count},
             now, s.pattern);
        s.scanning = true;
        return true;
      }
      auto finished = std::erase_if(a.scans, [](const ScanSlot& s) {
        return !s.scanning && s.last_page && s.key_pos >= s.page_keys();
      });
      if (finished == 0) return false;
      stats.patterns += finished;
    }
  }

  // The next batch to work on: the first not set aside, when Redis is ready or it is empty
  // (an empty batch completes even while Redis is down), else a set-aside one whose retry is
  // due. Batches not set aside go strictly in order.
  std::optional<std::size_t> next_batch(TimePoint now) const {
    std::optional<std::size_t> due;
    for (std::size_t i = 0; i < queue.size(); ++i) {
      const Pending& p = queue[i];
      if (p.failures > 0) {  // set aside: never holds later batches back
        if (!due && state() == State::Ready && p.retry_at <= now) due = i;
        continue;
      }
      if (due) return due;  // earlier than this one
      if (p.batch.empty() || state() == State::Ready) return i;
      return std::nullopt;
    }
    return due;
  }

  // When next_batch() will have one; kNever when only new work or a reconnect can bring one.
  TimePoint next_batch_time() const {
    TimePoint t = kNever;
    for (const Pending& p : queue) {
      if (p.failures > 0) {
        if (state() == State::Ready) t = std::min(t, p.retry_at);
        continue;
      }
      if (p.batch.empty() || state() == State::Ready) return TimePoint{};
      break;
    }
    return t;
  }

  void start_attempt(std::size_t i) {
    const Pending& p = queue[i];
    attempt = Attempt{};  // not emplace(): clang 14 rejects it for a nested aggregate
    Attempt& a = *attempt;
    a.batch = i;
    a.fixed.assign(p.batch.bumps.size(), false);
    a.redirected.assign(p.batch.bumps.size(), false);
    if (p.deletes_applied) {  // retried for its bumps or publishes: do not delete again
      a.del_pos = p.batch.deletes.size();
      a.next_pattern = p.batch.patterns.size();
    }
  }

  // The current attempt met a persistent error and every reply of it is in: retry the batch
  // later, with a delay growing per failure, and let later batches go first.
  void set_aside(TimePoint now) {
    Pending& p = current();
    const Attempt& a = *attempt;
    p.deletes_applied =
        p.deletes_applied || (!a.deletes_failed && a.del_pos == p.batch.deletes.size() &&
                              a.next_pattern == p.batch.patterns.size() && a.scans.empty());
    if (p.failures == 0) ++stats.failing_batches;
    p.failures = std::min(p.failures + 1, 30);
    Clock::duration delay = opt.backoff_min;
    for (int i = 1; i < p.failures && delay < opt.backoff_max; ++i) delay *= 2;
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
                  a.failed, seconds(delay), p.failures,
                  first ? "" : fmt::format(", failing for {}", seconds(now - *deferred.since)));
    } else {
      session.log(spdlog::level::debug, "{}", a.failed);
    }
    attempt.reset();
  }

  // Sends what the current batch allows; true when it completed a batch (call again).
  bool pump(TimePoint now) {
    if (attempt && !attempt->failed.empty()) {
      if (!in_flight.empty()) return false;  // its replies first
      set_aside(now);
    }
    if (!attempt) {
      auto next = next_batch(now);
      if (!next) return false;
      if (queue[*next].batch.empty()) return complete(*next, now);
      start_attempt(*next);
    }
    const Batch& b = current().batch;
    Attempt& a = *attempt;
    const std::string seed = unix_micros();
    auto room = [&](std::size_t n) {
      return in_flight.empty() || in_flight.size() + n <= opt.max_in_flight;
    };
    while (in_flight.size() < opt.max_in_flight) {
      if (!a.fixups.empty()) {
        if (!room(3)) break;
        std::string_view key = b.bumps[a.fixups.back()];
        std::size_t i = a.fixups.back();
        a.fixups.pop_back();
        send_unlink(
            0, 1, [&](std::size_t) { return key; }, now);
        send(Kind::SetNx, {"SET", key, seed, "NX"}, now, i);
        send(Kind::Incr, {"INCR", key}, now, i);
        continue;
      }
      if (a.del_pos < b.deletes.size()) {
        auto key_at = [&](std::size_t i) { return std::string_view(b.deletes[i]); };
        std::size_t end = chunk_end(a.del_pos, b.deletes.size(), key_at);
        send_unlink(a.del_pos, end, key_at, now);
        a.del_pos = end;
        continue;
      }
      if (pattern_step(b, now)) continue;
      // Deletes first: bumps (which a full Redis refuses) wait for every pattern to finish.
      if (!a.scans.empty() || a.next_pattern < b.patterns.size()) break;
      if (a.bump_pos < b.bumps.size()) {
        if (!room(2)) break;
        std::string_view key = b.bumps[a.bump_pos];
        send(Kind::SetNx, {"SET", key, seed, "NX"}, now, a.bump_pos);
        send(Kind::Incr, {"INCR", key}, now, a.bump_pos);
        ++a.bump_pos;
        continue;
      }
      // Publish only once everything else of the batch has been answered.
      if (!a.publishing && !in_flight.empty()) break;
      a.publishing = true;
      if (a.pub_pos < b.publishes.size()) {
        const auto& [channel, message] = b.publishes[a.pub_pos];
        send(Kind::Publish, {"PUBLISH", channel, message}, now, a.pub_pos);
        ++a.pub_pos;
        continue;
      }
      if (a.pub_pos < b.publishes.size() + b.streams.size()) {
        const std::size_t i = a.pub_pos - b.publishes.size();
        const auto& [stream, message] = b.streams[i];
        send(Kind::Xadd, {"XADD", stream, "MAXLEN", "~", stream_maxlen, "*", "message", message},
             now, i);
        ++a.pub_pos;
        continue;
      }
      break;
    }
    if (a.publishing && a.pub_pos == b.publishes.size() + b.streams.size() && in_flight.empty())
      return complete(a.batch, now);
    return false;
  }

  bool complete(std::size_t i, TimePoint now) {
    Pending p = std::move(queue[i]);
    queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(i));
    attempt.reset();
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

  // True when every batch still queued is set aside and not yet due (or none is queued).
  bool idle(TimePoint now) const {
    if (attempt) return false;
    return std::all_of(queue.begin(), queue.end(),
                       [&](const Pending& p) { return p.failures > 0 && p.retry_at > now; });
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
      if (state() == State::Ready && in_flight.empty() && !attempt &&
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
        if (session.expired(now))
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
        } else if (state() == State::Ready && in_flight.empty() && !attempt &&
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

  TimePoint deadline() const {
    if (closed) return kNever;
    if (!queries.empty() && state() == State::Ready) return TimePoint{};
    const TimePoint work = attempt ? kNever : next_batch_time();
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

void Target::on_redirect(std::function<bool(const Redirected&)> hook) {
  impl_->redirect_hook = std::move(hook);
}

void Target::apply(Batch batch, std::function<void()> done, PartFlags flags) {
  Impl::Pending p;
  p.batch = std::move(batch);
  p.done = std::move(done);
  p.flags = flags;
  impl_->queue.push_back(std::move(p));
}

void Target::query(std::vector<std::string> argv, std::function<void(const redisReply*)> reply) {
  if (impl_->closed) {
    reply(nullptr);
    return;
  }
  impl_->queries.emplace_back(std::move(argv), std::move(reply));
}

Target::~Target() {
  close();
}

void Target::apply(Batch batch, std::function<void()> done) {
  apply(std::move(batch), std::move(done), PartFlags{});
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

void Target::close() noexcept {
  if (!impl_ || impl_->closed) return;
  impl_->closed = true;
  impl_->drop_connection();
  impl_->session.stop_retrying();
  impl_->session.stop();
}

}  // namespace pgbust::redis
