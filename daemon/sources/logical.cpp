// The logical replication source: libpq replication connection, pgoutput stream, acknowledgement.
#include "pgbust/sources/logical.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <deque>
#include <optional>

#include "logical_coverage.hpp"
#include "logical_handshake.hpp"
#include "pgbust/core/emitted.hpp"
#include "pgbust/core/quote.hpp"
#include "pgbust/core/session.hpp"
#include "pgbust/pg/connect_params.hpp"
#include "pgbust/pg/conninfo.hpp"
#include "pgbust/pg/host_lookups.hpp"
#include "pgbust/pg/libpq.hpp"
#include "pgbust/pg/pgoutput.hpp"
#include "pgbust/rules/rules.hpp"
#include "pgbust/sources/logical_pacing.hpp"
#include "pgbust/sources/partition_map.hpp"
#include "pgbust/sources/publication_coverage.hpp"
#include "pgbust/sources/slot_record.hpp"
#include "source_impl.hpp"

namespace pgbust {

namespace {

using std::chrono::milliseconds;

constexpr TimePoint kAsap{};  // a deadline that has already passed
// confirm()-driven status updates: at most every kMinStatusGap while delivered work is still
// unconfirmed, within kCaughtUpStatusGap once everything delivered is confirmed (the slot
// then shows promptly that pgbust has caught up, e.g. at the end of a catch-up burst).
constexpr milliseconds kMinStatusGap{200};
constexpr milliseconds kCaughtUpStatusGap{10};
constexpr milliseconds kPausedRecheck{20};  // back-pressure: how often to look again
constexpr milliseconds kCloseWait{2000};    // close(): the end-of-stream handshake
constexpr int kMessagesPerRound = 2000;     // then yield to the loop (Redis, timers)
// Batched reads while the stream is busy: after draining the socket, wait before reading
// again, longer the busier the stream was over the last window. Each wakeup (poll +
// recv) then handles many messages instead of the few a walsender sends at a time, and
// the walsender's sends stop waking us (on a VM a cross-CPU wakeup costs the sender too:
// the walsender spent 7.5 us per row feeding a reader woken per message, 3 us feeding one
// that rests 2 ms). The cost is at most the rest in latency, and only at rates where the
// per-wakeup cost dominates; below 200 messages per window every message is read at once.
// bench_catchup (100k+ messages/s): 1 ms rests ~120k rows/s, 2 ms ~160k (all columns) and
// ~330k (column list), 5 ms fills the socket buffer and blocks the walsender.
// bench_latency: resting 2 ms from 20k messages/s made p99 at 4000 single-row tx/s 2.5 ms
// (0.5 ms unbatched); not resting until 50k left pgbust at 25-30% CPU at 8000 tx/s
// (5-7% batched), CPU the saturated machine's walsender then lacked.
// The numbers are ReadPacer's defaults: a 10 ms window, resting 1 ms from 200 messages per
// window and 2 ms from 500.
constexpr milliseconds kErrorLogInterval{60'000};  // a repeated failure is logged this often
constexpr milliseconds kStableAfter{30'000};       // up this long: the backoff starts afresh
constexpr milliseconds kFastPing{100};             // see answer_ping()
constexpr milliseconds kLookupTimeout{10'000};  // a partition lookup, at most (and setup_timeout)
constexpr int kFastPingLimit = 20;

}  // namespace

class LogicalSource::Impl final : public detail::SourceImpl {
 public:
  Impl(LogicalSource& self, LogicalSourceOptions o, ChangeSink& sink)
      : self_(self),
        opt_(std::move(o)),
        sink_(sink),
        session_(
            opt_.name,
            RetryPolicy{opt_.backoff_min, opt_.backoff_max, 0.5, kStableAfter, kErrorLogInterval},
            Session::Labels{"connecting", "identifying", "streaming"}) {
    if (opt_.slot.empty() || opt_.slot.size() > 63 ||
        !std::all_of(opt_.slot.begin(), opt_.slot.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        }))
      throw Error("logical source: invalid slot name \"" + opt_.slot +
                  "\" (PostgreSQL allows lower-case letters, digits and _, at most 63)");
    if (opt_.publication.empty()) throw Error("logical source: the publication name is empty");
    if (opt_.backoff_min <= milliseconds::zero() || opt_.backoff_max < opt_.backoff_min)
      throw Error("logical source: backoff must satisfy 0 < min <= max");
    if (opt_.standby_interval <= milliseconds::zero())
      throw Error("logical source: standby_interval must be positive");
    if (opt_.status_interval <= milliseconds::zero() ||
        opt_.receive_timeout <= milliseconds::zero() || opt_.setup_timeout <= milliseconds::zero())
      throw Error(
          "logical source: status_interval, receive_timeout and setup_timeout must be "
          "positive");
    // The side connection: periodic coverage checks (unless coverage_interval is zero) and
    // the partition lookups (always).
    check_ = std::make_unique<detail::CoverageCheck>(
        opt_.name, opt_.conninfo, opt_.publication, opt_.coverage_interval, opt_.setup_timeout,
        [this](const pgcatalog::Coverage& c) { on_coverage(c); });
    check_->set_tables(opt_.tables);
    if (opt_.coverage_interval > milliseconds::zero()) check_->check_soon();
    partitions_.set_rule_tables(opt_.tables);
  }

  ~Impl() override { close(); }

  // ---- Pollable -------------------------------------------------------------------------

  int fd() const override {
    if (lookups_) return lookups_->fd();
    if (!conn_) return -1;
    switch (session_.phase()) {
      case Phase::Connecting:
      case Phase::Starting:
      case Phase::Up:
        return PQsocket(conn_.get());
      default:
        return -1;
    }
  }

  short events() const override {
    switch (session_.phase()) {
      case Phase::Connecting:
        if (lookups_) return POLLIN;
        return connect_poll_ == PGRES_POLLING_READING ? POLLIN : POLLOUT;
      case Phase::Starting:
        return static_cast<short>(POLLIN | (want_write_ ? POLLOUT : 0));
      case Phase::Up:
        return static_cast<short>((can_read() && !resting_ ? POLLIN : 0) |
                                  (want_write_ ? POLLOUT : 0));
      default:
        return 0;
    }
  }

  void on_ready(short revents) override {
    guarded([&] {
      switch (session_.phase()) {
        case Phase::Connecting:
          continue_connect();
          break;
        case Phase::Starting:
          if (want_write_ && (revents & POLLOUT)) flush();
          if (revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
            consume();
            identify();
          }
          break;
        case Phase::Up:
          if (want_write_ && (revents & POLLOUT)) flush();
          if (revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
            consume();
            read_stream();
          }
          break;
        default:
          break;
      }
    });
  }

  TimePoint deadline() const override {
    switch (session_.phase()) {
      case Phase::Idle:
      case Phase::Connecting:
      case Phase::Starting:
      case Phase::BackingOff:
        return session_.deadline();
      case Phase::Up: {
        TimePoint t = next_status_;
        if (status_due_) t = std::min(t, last_status_ + status_gap());
        if (pending_input_) t = std::min(t, can_read() ? kAsap : paused_check_);
        if (resting_) t = std::min(t, rest_until_);
        if (!reading_paused())
          t = std::min(t, ping_sent_ ? last_receive_ + opt_.receive_timeout
                                     : last_receive_ + opt_.receive_timeout / 2);
        return t;
      }
      case Phase::Stopped:
        return kNever;
    }
    return kNever;
  }

  void on_timer(TimePoint now) override {
    guarded([&] {
      switch (session_.phase()) {
        case Phase::Idle:
        case Phase::BackingOff:
          if (session_.due(now)) start_connect();
          break;
        case Phase::Connecting:
        case Phase::Starting:
          if (!session_.expired(now)) break;
          if (setup_.standby()) {  // time to look at the slot again
            setup_.recheck();
            session_.expect(now + opt_.setup_timeout);
            flush();
            break;
          }
          throw ConnectionError("timed out after " + std::to_string(opt_.setup_timeout.count()) +
                                " ms " + waiting_for() + " on " + server());
        case Phase::Up:
          streaming_timer(now);
          break;
        case Phase::Stopped:
          break;
      }
    });
  }

  // ---- Source ---------------------------------------------------------------------------

  const std::string& name() const override { return opt_.name; }

  void confirm(Position pos) override {
    if (open_gap_ && pos >= gap_at_) close_gap();
    if (pub_widen_at_ && pos >= *pub_widen_at_) close_publication_gap();
    if (ledger_.confirm(pos)) reported_moved();
  }

  SourceStatus status() const override {
    SourceStatus s;
    session_.fill(s);
    const Position pos = ledger_.reported();
    s.position = pg::format_lsn(pos);
    s.lag_bytes = server_wal_end_ == 0 || session_.is_standby() ? -1
                  : server_wal_end_ > pos ? static_cast<std::int64_t>(server_wal_end_ - pos)
                                          : 0;
    std::int64_t oldest = ledger_.oldest_unconfirmed_us() != 0 ? ledger_.oldest_unconfirmed_us()
                          : in_txn_                            ? txn_commit_time_us_
                                                               : 0;
    s.lag_seconds = oldest == 0
                        ? 0.0
                        : std::max(0.0, static_cast<double>(pgoutput::pg_now_us() +
                                                            pgoutput::kPgEpochOffsetUs - oldest) /
                                            1e6);
    s.changes = changes_;
    s.transactions = transactions_;
    if (open_gap_)
      s.degraded = "gap: " + *open_gap_;
    else if (!record_error_.empty())
      s.degraded = record_error_;
    else
      s.degraded = coverage_.degraded();
    s.uncovered_tables = static_cast<std::int64_t>(coverage_.uncovered().size());
    return s;
  }

  void stop_reading() override {
    if (!stop_reading_) log(spdlog::level::info, "stop reading: finishing the current transaction");
    stop_reading_ = true;
  }

  void rules_changed(const rules::RuleSet& rules) override {
    opt_.tables = opt_.tables_of ? opt_.tables_of(rules) : rules.tables();
    coverage_.retain(opt_.tables);
    check_->set_tables(opt_.tables);
    if (opt_.coverage_interval > milliseconds::zero()) check_->check_soon();
    partitions_.set_rule_tables(opt_.tables);
  }

  void close() noexcept override {
    if (check_) check_->stop();
    if (session_.phase() == Phase::Stopped) return;
    try {
      if (conn_ && session_.phase() == Phase::Up) end_stream();
    } catch (const std::exception& e) {
      log(spdlog::level::warn, "while ending the stream: {}", e.what());
    } catch (...) {
    }
    lookups_.reset();
    conn_.reset();
    session_.stop();
    log(spdlog::level::info, "closed at {}", pg::format_lsn(ledger_.reported()));
  }

  Position reported() const { return ledger_.reported(); }
  Position server_wal_end() const { return server_wal_end_; }
  std::vector<std::string> uncovered_tables() const { return coverage_.uncovered_tables(); }
  Pollable* side() { return check_.get(); }

 private:
  struct Held {  // a message waiting for a partition lookup's answer
    std::string payload;
    std::uint64_t wal_start = 0;
  };

  // ---- helpers --------------------------------------------------------------------------

  template <typename... A>
  void log(spdlog::level::level_enum lvl, fmt::format_string<A...> f, A&&... a) const {
    session_.log(lvl, f, std::forward<A>(a)...);
  }

  std::string server() const {
    return conn_ ? pg::describe(conn_.get()) : pg::describe_conninfo(opt_.conninfo);
  }

  milliseconds status_gap() const {
    return !in_txn_ && ledger_.caught_up() ? kCaughtUpStatusGap : kMinStatusGap;
  }

  static TimePoint now_if(bool needed) { return needed ? Clock::now() : TimePoint{}; }

  bool reading_paused() const {
    return holding_ || (!in_txn_ && (stop_reading_ || !sink_.accepting()));
  }
  bool can_read() const { return !reading_paused(); }

  // Runs one step of the state machine; any failure ends the connection and backs off.
  template <typename F>
  void guarded(F&& body) {
    try {
      body();
    } catch (const std::exception& e) {
      fail(e.what());
    }
  }

  void fail(const std::string& what) {
    const bool streaming = session_.phase() == Phase::Up;
    if (in_txn_) {
      in_txn_ = false;
      try {
        sink_.abort(self_);
      } catch (const std::exception& e) {
        log(spdlog::level::err, "the sink failed to abort a transaction: {}", e.what());
      }
    }
    lookups_.reset();
    conn_.reset();
    want_write_ = pending_input_ = false;
    forget_relations();
    session_.fail(what, Clock::now(), streaming ? permanent_hint(what) : std::string());
  }

  // Errors the walsender raises while decoding that no reconnect can fix: said once, with the
  // remedies and what they cost. The retries go on (with backoff) in case an operator fixes
  // it some other way.
  std::string permanent_hint(const std::string& what) const {
    if (what.find("publication \"") == std::string::npos ||
        what.find("does not exist") == std::string::npos)
      return {};
    return fmt::format(
        " (permanent: the walsender decodes slot {0} with the catalog as of each change, and "
        "the publication did not exist when changes after the slot's confirmed position {1} "
        "were written, e.g. it was dropped and re-created; every reconnect fails on the same "
        "change. Remedies: drop and re-create slot {0} (the changes in between are skipped, "
        "so their cache keys must be invalidated by hand), or pg_replication_slot_advance() "
        "it past the publication's creation (skips the same changes))",
        opt_.slot, pg::format_lsn(std::max(ledger_.confirmed(), setup_.slot_confirmed())));
  }

  std::string waiting_for() const {
    if (session_.phase() == Phase::Connecting)
      return lookups_ ? "resolving the host" : "connecting";
    return "waiting for " + setup_.command();
  }

  // ---- connecting -----------------------------------------------------------------------

  // Host names are resolved off the loop first (pg/host_lookups.hpp); libpq then gets their
  // addresses as hostaddr=.
  void start_connect() {
    session_.connecting(Clock::now(), opt_.setup_timeout);
    lookups_ = std::make_unique<pg::HostLookups>(opt_.conninfo);
    if (lookups_->done()) {
      start_libpq();
    } else {
      session_.set_server(lookups_->server());
      log(spdlog::level::debug, "resolving {}", lookups_->server());
    }
  }

  void start_libpq() {
    std::vector<std::pair<std::string, std::string>> after{{"replication", "database"},
                                                           {"fallback_application_name", "pgbust"}};
    try {
      for (auto& kv : lookups_->params()) after.push_back(std::move(kv));
    } catch (const ConnectionError& e) {
      throw ConnectionError("connecting to PostgreSQL (" + pg::describe_conninfo(opt_.conninfo) +
                            "): " + e.what());
    }
    lookups_.reset();
    pg::ConnectParams params(opt_.conninfo, {}, std::move(after));
    conn_.reset(PQconnectStartParams(params.keys(), params.values(), 1));
    if (!conn_) throw ConnectionError("connecting to PostgreSQL: out of memory");
    if (PQstatus(conn_.get()) == CONNECTION_BAD)
      throw ConnectionError("connecting to PostgreSQL (" + pg::describe_conninfo(opt_.conninfo) +
                            "): " + pg::connect_error(conn_.get(), opt_.conninfo));
    connect_poll_ = PGRES_POLLING_WRITING;
    session_.set_server(pg::host_port(conn_.get()));
    log(spdlog::level::debug, "connecting to {}", pg::describe_conninfo(opt_.conninfo));
  }

  void continue_connect() {
    if (lookups_) {
      if (lookups_->done()) start_libpq();
      return;
    }
    connect_poll_ = PQconnectPoll(conn_.get());
    if (connect_poll_ == PGRES_POLLING_FAILED)
      throw ConnectionError("connecting to PostgreSQL (" + pg::describe_conninfo(opt_.conninfo) +
                            "): " + pg::error_text(conn_.get()));
    if (connect_poll_ != PGRES_POLLING_OK) return;
    if (PQsetnonblocking(conn_.get(), 1) != 0) pg::fail(conn_.get(), "setting non-blocking mode");
    session_.set_server(pg::host_port(conn_.get()));
    session_.starting(Clock::now() + opt_.setup_timeout);
    log(spdlog::level::debug, "connected to {} (server {})", server(),
        PQserverVersion(conn_.get()));
    setup_.begin(conn_.get(), ledger_.resume_from(), ledger_.none_unconfirmed());
    flush();
  }

  // One step of the identifying phase: results in, the next setup command out.
  void identify() {
    const std::string before = setup_.command();
    if (setup_.on_input()) {
      if (setup_.gap()) {
        // Another stream (a re-created slot, another system): positions start afresh.
        ledger_.restart(setup_.slot_confirmed());
        sent_flush_ = setup_.slot_confirmed();
        server_wal_end_ = 0;
      }
      server_wal_end_ = std::max(server_wal_end_, setup_.server_wal_end());
      if (ledger_.resume(setup_.slot_confirmed())) reported_moved();
      enter_streaming();
      widen_gap_or_record();
      if (!opt_.tables.empty()) on_coverage(setup_.coverage());
      deliver_publication_widening();
      return;
    }
    if (setup_.standby()) {
      enter_standby();
      return;
    }
    if (setup_.command() != before) session_.expect(Clock::now() + opt_.setup_timeout);
    flush();
  }

  // Another connection streams the slot (another host with the same config): keep this
  // connection, look again every standby_interval, stream once the slot is free. Said once.
  void enter_standby() {
    const auto now = Clock::now();
    if (session_.standby(setup_.holder(), now))
      log(spdlog::level::info,
          "another instance is active ({}): standby, checking every {} and taking over "
          "when it is released",
          setup_.holder(), seconds_text(opt_.standby_interval));
    session_.expect(now + opt_.standby_interval);
  }

  // ---- gaps (promise 8) ------------------------------------------------------------------

  // A gap the handshake found widens every rule table once, ahead of anything streamed; it
  // stays open (the verdict degraded, the record saying so) until the pipeline confirms that
  // widening applied. Without a gap, the record is (re)written now.
  void widen_gap_or_record() {
    if (opt_.state_dir.empty()) return;
    const auto& gap = setup_.gap();
    if (!gap) {
      if (!open_gap_) save_record(open_gap_text());
      return;
    }
    if (open_gap_) return;  // widened already, not yet applied (this is a reconnect)
    open_gap_ = *gap;
    gap_at_ = setup_.start_from();
    // Positions start afresh; this widening covers every table a publication gap widened.
    if (pub_widen_at_) pub_widen_at_ = gap_at_;
    ++gaps_;
    log(spdlog::level::err, "gap: {}; every rule widens once", *gap);
    sink_.begin(self_);
    for (const auto& t : opt_.tables) {
      auto dot = t.find('.');
      std::string schema = dot == std::string::npos ? "public" : t.substr(0, dot);
      std::string table = dot == std::string::npos ? t : t.substr(dot + 1);
      sink_.widen_table(self_, schema, table, Unknown::SlotGap);
    }
    ledger_.delivered_own(gap_at_);
    sink_.commit(self_, gap_at_, pgoutput::pg_now_us() + pgoutput::kPgEpochOffsetUs);
  }

  void close_gap() {
    log(spdlog::level::warn, "gap closed: the widening for \"{}\" is applied", *open_gap_);
    open_gap_.reset();
    save_record(open_gap_text());
  }

  // What the slot record says is open: a slot gap, or a publication gap whose widening is
  // not applied (a restart before it is then widens every rule: the check after the restart
  // would see the table covered and not know it was not).
  std::string open_gap_text() const {
    if (open_gap_) return *open_gap_;
    if (coverage_.has_pending() || pub_widen_at_)
      return "publication " + opt_.publication +
             " did not cover a rule table for a while, and its widening was not applied";
    return {};
  }

  // ---- publication coverage (issue 10, part 3) ----------------------------------------------

  // A coverage check's result (at connect, and every coverage_interval on the side
  // connection): tables the publication lost are logged once and keep the verdict degraded;
  // tables it covers again (or under another identity: a swapped table, a re-created
  // publication) widen once, because their changes in between were never sent.
  void on_coverage(const pgcatalog::Coverage& c) {
    partitions_.set_partitioned(c);
    const auto ch = coverage_.observe(c, opt_.publication);
    for (const auto& u : ch.lost)
      log(spdlog::level::err,
          "publication {} {} rule table {}: its changes are not streamed and its cache keys "
          "can go stale; the verdict is degraded until it is covered again, then its rules "
          "widen once. Fix: {}",
          quote_for_log(opt_.publication),
          c.publication_exists ? "does not cover" : "does not exist, so it does not cover",
          quote_for_log(u.table), u.fix);
    for (const auto& t : ch.widen) {
      const bool gained = std::find(ch.gained.begin(), ch.gained.end(), t) != ch.gained.end();
      log(spdlog::level::warn,
          "publication {} {}: the rules of {} widen once (changes in between were never sent)",
          quote_for_log(opt_.publication),
          gained ? "covers " + quote_for_log(t) + " again"
                 : "covers " + quote_for_log(t) +
                       " under another identity than at the last check (a swapped table, a "
                       "re-created publication, or the table dropped from it and added back)",
          quote_for_log(t));
    }
    if (!ch.widen.empty() && !opt_.state_dir.empty()) save_record(open_gap_text());
    deliver_publication_widening();
  }

  // The pending widenings as one transaction of pgbust's own at the current stream position
  // (just past the last delivered commit, before any later one), so the pipeline applies and
  // confirms it in order like any other. Only between transactions of a running stream.
  void deliver_publication_widening() {
    if (!coverage_.has_pending() || in_txn_ || session_.phase() != Phase::Up) return;
    const Position at = ledger_.resume_from() + 1;
    const std::int64_t now_us = pgoutput::pg_now_us() + pgoutput::kPgEpochOffsetUs;
    const auto tables = coverage_.take_pending();
    // Book-keeping first: the sink may confirm() from inside commit().
    ledger_.delivered(at, now_us);
    coverage_.delivered();
    pub_widen_at_ = at;
    sink_.begin(self_);
    for (const auto& t : tables) {
      auto dot = t.find('.');
      sink_.widen_table(self_, dot == std::string::npos ? "public" : t.substr(0, dot),
                        dot == std::string::npos ? t : t.substr(dot + 1), Unknown::PublicationGap);
    }
    sink_.commit(self_, at, now_us);
  }

  void close_publication_gap() {
    pub_widen_at_.reset();
    if (!coverage_.applied()) return;
    log(spdlog::level::warn, "publication gap closed: the widening is applied");
    if (!opt_.state_dir.empty() && !coverage_.widening_open()) save_record(open_gap_text());
  }

  void save_record(const std::string& open_gap) {
    slot::Record r = setup_.record();
    r.confirmed = pg::format_lsn(std::max(ledger_.confirmed(), setup_.slot_confirmed()));
    r.open_gap = open_gap;
    try {
      slot::save(slot::file_for(opt_.state_dir, opt_.slot), r);
      record_error_.clear();
    } catch (const Error& e) {
      // Without the record a later vanished slot would look like a first start: say so.
      record_error_ = std::string("cannot save the slot record: ") + e.what();
      log(spdlog::level::err, "{}", record_error_);
      session_.count_error(record_error_);
    }
  }

  // ---- streaming ------------------------------------------------------------------------

  // Streaming. The backoff is not reset here: an error on the first change (a publication
  // the walsender cannot see) would otherwise reconnect several times a second forever. It
  // restarts from the minimum once a commit arrived or the stream stayed up (kStableAfter).
  void enter_streaming() {
    auto now = Clock::now();
    if (session_.is_standby())
      log(spdlog::level::warn,
          "taking over slot {} after {} standby: the active instance released it", opt_.slot,
          seconds_text(session_.standby_for(now)));
    session_.up(now);
    last_receive_ = now;
    ping_sent_ = false;
    sent_flush_ = 0;  // this connection has not been told anything yet
    status_due_ = ledger_.reported() > 0;
    last_status_ = now - kMinStatusGap;
    next_status_ = now + opt_.status_interval;
    pending_input_ = true;
    resting_ = false;
    pacer_.reset(now);
    // In a run of failures (the same error on every reconnect) only the first is told.
    log(session_.failures() >= 2 ? spdlog::level::debug : spdlog::level::info,
        "streaming slot {} (publication {}) from {} on {}", opt_.slot, opt_.publication,
        pg::format_lsn(setup_.start_from()), server());
  }

  void consume() {
    if (PQconsumeInput(conn_.get()) == 0)
      pg::fail(conn_.get(), session_.phase() == Phase::Up
                                ? "reading the stream of slot " + opt_.slot
                                : "waiting for " + setup_.command());
  }

  void flush() {
    int r = PQflush(conn_.get());
    if (r < 0) pg::fail(conn_.get(), "sending to the server (slot " + opt_.slot + ")");
    want_write_ = r == 1;
    // PQflush may have read input while waiting to write: look at libpq's buffer again.
    if (session_.phase() == Phase::Up) pending_input_ = true;
  }

  void read_stream() {
    bool refilled = false, stamped = false;
    for (int budget = kMessagesPerRound;; --budget) {
      if (reading_paused()) {
        pending_input_ = true;
        paused_check_ = Clock::now() + kPausedRecheck;
        return;
      }
      if (budget == 0) {
        pending_input_ = true;
        return;
      }
      char* raw = nullptr;
      int n = PQgetCopyData(conn_.get(), &raw, 1);
      if (n == 0 && pacer_.busy() && !refilled) {
        // A busy stream has usually more waiting than libpq takes in one read (16 kB):
        // read on until the socket is empty, then rest.
        refilled = true;
        consume();
        continue;
      }
      if (n == 0) {
        pending_input_ = false;
        pace();
        return;
      }
      refilled = false;
      if (n == -1) end_of_copy();
      if (n < 0) pg::fail(conn_.get(), "reading the stream of slot " + opt_.slot);
      pg::Buffer buf(raw);
      if (!stamped) last_receive_ = Clock::now(), stamped = true;  // once per drain is enough
      ping_sent_ = false;
      pacer_.message();
      on_copy_data(std::string_view(raw, static_cast<std::size_t>(n)));
    }
  }

  // Called with the stream drained: rest a moment if the stream is busy (see ReadPacer).
  void pace() {
    const auto now = Clock::now();
    const milliseconds rest = pacer_.drained(now);
    if (rest.count() > 0) {
      resting_ = true;
      rest_until_ = now + rest;
    }
  }

  [[noreturn]] void end_of_copy() {
    std::string text = "the server ended the replication stream";
    // PQgetResult blocks while busy: only take what has arrived.
    while (PQisBusy(conn_.get()) == 0) {
      pg::Result r(PQgetResult(conn_.get()));
      if (!r) break;
      if (PQresultStatus(r.get()) == PGRES_FATAL_ERROR) {
        text = pg::error_text(r.get());
        break;
      }
    }
    throw ConnectionError("streaming slot " + opt_.slot + " from " + server() + ": " + text);
  }

  void on_copy_data(std::string_view raw) {
    const pgoutput::ServerMessage m = pgoutput::parse_server_message(raw);
    server_wal_end_ = std::max(server_wal_end_, m.wal_end);
    if (m.type == pgoutput::ServerMessage::Type::XLogData) {
      const pgoutput::Decoded& d = decoder_.decode(m.payload, m.wal_start);
      if (relations_known(d, m.payload, m.wal_start)) dispatch(d);
      return;
    }
    // Outside a transaction a keepalive's wal_end can be acknowledged once everything
    // delivered is confirmed: an idle slot does not hold WAL.
    if (!in_txn_ && ledger_.keepalive(m.wal_end)) reported_moved();
    if (m.reply_requested) answer_ping(m.wal_end);
  }

  // A keepalive that asks for a reply. Outside a shutdown the walsender asks only after
  // wal_sender_timeout/2 without hearing from us; a burst of requests answered within
  // milliseconds is a walsender at server shutdown that will not exit (and holds the
  // shutdown) until told that everything up to wal_end is flushed. When that is more than
  // the pipeline confirmed, disconnect: the unconfirmed transactions stream again later.
  void answer_ping(Position wal_end) {
    auto now = Clock::now();
    fast_pings_ = now - last_ping_ < kFastPing ? fast_pings_ + 1 : 0;
    last_ping_ = now;
    send_status(now, false);
    if (fast_pings_ >= kFastPingLimit && ledger_.reported() < wal_end)
      throw ConnectionError("the server on " + server() + " is shutting down and waits for " +
                            "confirmation up to " + pg::format_lsn(wal_end) +
                            ", but Redis has applied only up to " +
                            pg::format_lsn(ledger_.reported()) +
                            ": disconnecting so it can stop (unconfirmed work streams again)");
  }

  void dispatch(const pgoutput::Decoded& d) {
    using pgoutput::Kind;
    switch (d.kind) {
      case Kind::Begin:
        if (in_txn_) throw pgoutput::ProtocolError("pgoutput: Begin inside a transaction");
        in_txn_ = true;
        txn_commit_time_us_ = d.begin.commit_time + pgoutput::kPgEpochOffsetUs;
        txn_xid_ = d.begin.xid;
        ++txn_seq_;
        sink_.begin(self_);
        break;
      case Kind::Commit: {
        if (!in_txn_) throw pgoutput::ProtocolError("pgoutput: Commit outside a transaction");
        const std::int64_t t = d.commit.commit_time + pgoutput::kPgEpochOffsetUs;
        const Position end = d.commit.end_lsn;
        // Book-keeping first: the sink may confirm() from inside commit().
        in_txn_ = false;
        ++transactions_;
        session_.progress(now_if(session_.recovering()));  // the stream works
        ledger_.delivered(end, t);
        sink_.commit(self_, end, t);
        deliver_publication_widening();
        break;
      }
      case Kind::Insert:
      case Kind::Update:
      case Kind::Delete:
      case Kind::Truncate:
        if (!in_txn_)
          throw pgoutput::ProtocolError("pgoutput: " + std::string(to_string(d.kind)) +
                                        " outside a transaction");
        for (const ChangeEvent& ev : d.events) {
          deliver(ev);
          ++changes_;
        }
        break;
      case Kind::Relation:
        partitions_.relation(&d.relation->table, d.relation->oid);
        if (d.relation_changed && d.relation->table.generation > 1)
          log(spdlog::level::info, "table {} changed layout ({} columns, generation {})",
              quote_for_log(d.relation->table.qualified()), d.relation->table.columns.size(),
              d.relation->table.generation);
        break;
      case Kind::Message:
        // Only the application's own invalidations; other prefixes are other consumers'.
        if (d.message.prefix != kEmittedPrefix) break;
        if (d.message.transactional && !in_txn_)
          throw pgoutput::ProtocolError("pgoutput: a transactional Message outside a transaction");
        sink_.message(self_, d.message.lsn, d.message.transactional, d.message.content);
        break;
      case Kind::Origin:
      case Kind::Type:
        break;
    }
  }

  // ---- partitions without publish_via_partition_root (issue 10, part 9) ---------------------
  // A leaf partition's changes go under the rule tables above it; a relation without a
  // current answer is looked up on the side connection while the stream holds its message
  // (the design: pgbust/sources/partition_map.hpp).

  void forget_relations() {
    partitions_.forget();
    held_.reset();
    holding_ = false;
    ++lookup_seq_;
  }

  // Whether every relation `d` changes is known well enough to apply it now; if not, the
  // stream holds this message (`payload`) until the side connection answers.
  bool relations_known(const pgoutput::Decoded& d, std::string_view payload,
                       std::uint64_t wal_start) {
    if (d.events.empty()) return true;
    const TableInfo* t = partitions_.to_look_up(d.events, Clock::now());
    if (t == nullptr) return true;
    held_ = Held{std::string(payload), wal_start};
    holding_ = true;  // before lookup(): a failure answers at once
    const std::uint64_t seq = ++lookup_seq_;
    const std::uint32_t oid = partitions_.oid(t), xid = txn_xid_;
    check_->lookup(pgcatalog::kPartitionChainSql, {std::to_string(oid), std::to_string(xid)},
                   std::min(kLookupTimeout, opt_.setup_timeout),
                   [this, seq, t, oid, xid](const PGresult* r, const std::string& error) {
                     if (seq == lookup_seq_) guarded([&] { on_lookup(t, oid, xid, r, error); });
                   });
    return false;
  }

  void on_lookup(const TableInfo* t, std::uint32_t oid, std::uint32_t xid, const PGresult* r,
                 const std::string& error) {
    holding_ = false;
    paused_check_ = kAsap;  // read on at once
    std::vector<std::string> roots;
    const std::string why = partitions_.answer(t, r, error, Clock::now(), roots);
    if (!why.empty()) {
      log(spdlog::level::warn,
          "relation {} (oid {}) in transaction {} may be a partition of a rule table, and {}: "
          "the rules of every partitioned rule table widen once per transaction that changes "
          "it",
          quote_for_log(t->qualified()), oid, xid, why);
    } else if (!roots.empty()) {
      std::string names;
      for (const auto& n : roots) names += (names.empty() ? "" : ", ") + quote_for_log(n);
      log(spdlog::level::debug, "partition {} (oid {}): its changes fire the rules of {}",
          quote_for_log(t->qualified()), oid, names);
    }
    if (!held_) return;
    // The held message again, now that one more of its relations is known.
    const Held h = std::move(*held_);
    held_.reset();
    const pgoutput::Decoded& d = decoder_.decode(h.payload, h.wal_start);
    if (relations_known(d, h.payload, h.wal_start)) dispatch(d);
  }

  // One change, under its leaf's rule tables when it is a mapped partition.
  void deliver(const ChangeEvent& ev) {
    const auto route = partitions_.route(ev.table);
    switch (route.kind) {
      case logical::PartitionMap::Route::Kind::AsIs:
        break;
      case logical::PartitionMap::Route::Kind::Roots:
        for (const auto& root : route.roots) {
          ChangeEvent as_root = ev;
          as_root.table = root.get();
          sink_.change(self_, as_root);
        }
        return;
      case logical::PartitionMap::Route::Kind::Unknown:
        widen_partitioned();
        break;
    }
    sink_.change(self_, ev);
  }

  void widen_partitioned() {
    if (unknown_widened_ == txn_seq_) return;
    unknown_widened_ = txn_seq_;
    for (const auto& p : partitions_.partitioned()) {
      const auto dot = p.find('.');
      sink_.widen_table(self_, p.substr(0, dot), p.substr(dot + 1), Unknown::UnknownPartition);
    }
  }

  // The position to report moved forward: send it soon.
  void reported_moved() {
    if (ledger_.reported() > sent_flush_) status_due_ = true;
  }

  void send_status(TimePoint now, bool request_reply) {
    // 0 (InvalidXLogRecPtr) moves nothing: a dry run leaves a slot it does not own alone.
    const Position acked = opt_.never_confirm ? 0 : ledger_.reported();
    auto msg = pgoutput::status_update(acked, pgoutput::pg_now_us(), request_reply);
    if (PQputCopyData(conn_.get(), msg.data(), static_cast<int>(msg.size())) != 1)
      pg::fail(conn_.get(), "sending a status update for slot " + opt_.slot);
    flush();
    if (acked != sent_flush_)
      log(spdlog::level::debug, "confirmed {} to the server", pg::format_lsn(acked));
    sent_flush_ = acked;
    last_status_ = now;
    next_status_ = now + opt_.status_interval;
    status_due_ = false;
  }

  void streaming_timer(TimePoint now) {
    if (resting_ && now >= rest_until_) {
      resting_ = false;
      // Data has almost certainly arrived meanwhile: read it now rather than poll first.
      if (can_read()) {
        consume();
        pending_input_ = true;
      }
    }
    if (pending_input_) {
      if (can_read())
        read_stream();
      else
        paused_check_ = now + kPausedRecheck;
    }
    if (reading_paused()) last_receive_ = now;  // not reading: silence is ours, not the server's
    if (now - last_receive_ >= opt_.receive_timeout)
      throw ConnectionError("no message from " + server() + " for " +
                            std::to_string(opt_.receive_timeout.count()) + " ms");
    if (!ping_sent_ && now - last_receive_ >= opt_.receive_timeout / 2) {
      send_status(now, true);
      ping_sent_ = true;
    } else if (now >= next_status_ || (status_due_ && now >= last_status_ + status_gap())) {
      send_status(now, false);
    }
  }

  // Reports the final position, then ends COPY and waits (bounded) for the server to finish,
  // so it has processed the last status update before the connection closes.
  void end_stream() {
    send_status(Clock::now(), false);
    if (PQputCopyEnd(conn_.get(), nullptr) != 1) return;
    const auto until = Clock::now() + kCloseWait;
    while (Clock::now() < until) {
      int f = PQflush(conn_.get());
      if (f < 0) return;
      pollfd p{PQsocket(conn_.get()), static_cast<short>(POLLIN | (f == 1 ? POLLOUT : 0)), 0};
      auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now()).count();
      if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left, 1))) < 0 && errno != EINTR)
        return;
      if (PQconsumeInput(conn_.get()) == 0) return;
      char* raw = nullptr;
      int n;
      while ((n = PQgetCopyData(conn_.get(), &raw, 1)) > 0) pg::Buffer discard(raw);
      if (n == 0) continue;
      // COPY is over: the server answered; drain its results without blocking.
      while (PQisBusy(conn_.get()) == 0) {
        pg::Result r(PQgetResult(conn_.get()));
        if (!r) return;
      }
    }
  }

  // ---- state ----------------------------------------------------------------------------

  LogicalSource& self_;
  LogicalSourceOptions opt_;
  ChangeSink& sink_;
  std::unique_ptr<pg::HostLookups> lookups_;  // while resolving host names
  pg::Conn conn_;
  Session session_;
  PostgresPollingStatusType connect_poll_ = PGRES_POLLING_WRITING;
  detail::LogicalSetup setup_{opt_};
  pgoutput::Decoder decoder_;

  bool want_write_ = false;     // libpq has unsent output
  bool pending_input_ = false;  // libpq may hold complete messages not yet read
  logical::ReadPacer pacer_;
  bool resting_ = false;  // not reading until rest_until_ (see pace())
  TimePoint rest_until_{};
  bool stop_reading_ = false;
  bool ping_sent_ = false;
  bool status_due_ = false;  // confirm() advanced: send an update soon
  TimePoint paused_check_{};
  TimePoint last_receive_{}, last_status_{}, next_status_ = kNever;

  bool in_txn_ = false;
  std::int64_t txn_commit_time_us_ = 0;
  std::uint32_t txn_xid_ = 0;
  std::uint64_t txn_seq_ = 0;  // counts Begins

  // Partitions (see relations_known()).
  logical::PartitionMap partitions_;
  std::optional<Held> held_;
  bool holding_ = false;                 // the stream waits for a lookup's answer
  std::uint64_t lookup_seq_ = 0;         // answers to an older lookup are stale
  std::uint64_t unknown_widened_ = 0;    // txn_seq_ of the last UnknownPartition widening
  std::optional<std::string> open_gap_;  // a gap widened and not yet applied
  Position gap_at_ = 0;                  // the position of that widening
  std::uint64_t gaps_ = 0;
  std::string record_error_;  // the slot record could not be saved
  logical::CoverageTracker coverage_;
  std::unique_ptr<detail::CoverageCheck> check_;  // the side connection
  std::optional<Position> pub_widen_at_;          // a publication gap's widening, unconfirmed
  logical::AckLedger ledger_;
  Position sent_flush_ = 0;  // last flush position sent on this connection
  Position server_wal_end_ = 0;

  std::uint64_t changes_ = 0, transactions_ = 0;
  int fast_pings_ = 0;
  TimePoint last_ping_{};
};

LogicalSource::LogicalSource(LogicalSourceOptions options, ChangeSink& sink) {
  impl_ = std::make_unique<Impl>(*this, std::move(options), sink);
}
LogicalSource::~LogicalSource() = default;

const LogicalSource::Impl& LogicalSource::impl() const {
  return static_cast<const Impl&>(*impl_);
}
Position LogicalSource::reported() const {
  return impl().reported();
}
Position LogicalSource::server_wal_end() const {
  return impl().server_wal_end();
}
std::vector<std::string> LogicalSource::uncovered_tables() const {
  return impl().uncovered_tables();
}

Pollable* LogicalSource::side() {
  return static_cast<Impl&>(*impl_).side();
}

std::string LogicalSource::format_position(Position position) const {
  return pg::format_lsn(position);
}

}  // namespace pgbust
