// The LISTEN/NOTIFY source: the protocol steps (LISTEN, keepalives), payloads into change
// events, the gap policy after every (re)connection, and back-pressure that stops reading
// without dropping what was read. Payload parsing is in notify_payload.cpp.
#include "pgbust/sources/notify.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "async_core.hpp"
#include "pgbust/core/json.hpp"
#include "pgbust/core/quote.hpp"
#include "pgbust/core/text.hpp"

namespace pgbust {

namespace {

using detail::seconds;
using detail::wall_us;

constexpr std::size_t kMaxColumns = 1600;  // PostgreSQL's own limit per table
constexpr std::size_t kMaxTables = 10000;  // tables remembered from payloads
constexpr std::size_t kMaxLinesPerInterval = 10;
constexpr std::size_t kMaxHeld = 1000;  // payloads waiting for a read of the keys

// The signing keys, newest first. Read with LISTEN (after it, in the same round trip, so a
// key created before any payload pgbust can receive is in the answer) and again whenever a
// payload names a key id not read yet (a rotation).
constexpr const char* kReadKeys =
    "SELECT id, pg_catalog.encode(secret, 'hex') FROM pgbust.notify_key ORDER BY created DESC, "
    "id LIMIT 16";
constexpr const char* kReadKeysWhat =
    "reading the NOTIFY signing keys from pgbust.notify_key (sources.notify.verify is on: "
    "`pgbust setup --notify --apply` creates the table and grants pgbust's role SELECT on it)";

// "schema.table" from a payload, quoted for a log line.
std::string quoted_table(const std::string& schema, const std::string& table) {
  return quote_for_log(schema + "." + table);
}

}  // namespace

struct NotifySource::Impl final : detail::AsyncCore {
  // One table as payloads describe it: a stable TableInfo for the rule engine's cache.
  struct Table {
    std::unique_ptr<TableInfo> info = std::make_unique<TableInfo>();
    std::unordered_map<std::string, int> index;
    std::unordered_set<std::string> needed;  // columns the rules read
    std::unordered_set<std::string> warned;  // needed columns reported missing
    bool has_rules = false;
  };

  // Log lines about payloads: at most kMaxLinesPerInterval per interval, then a summary.
  struct LineBudget {
    TimePoint window{};
    std::size_t used = 0;
    std::uint64_t held = 0;
  };

  NotifyOptions opt;
  LineBudget lines;
  TimePoint deadline_at = kNever;  // LISTEN / keepalive answer
  TimePoint last_traffic{};
  bool keepalive_in_flight = false;
  bool key_read_in_flight = false;
  bool key_read_wanted = false;
  std::vector<notify::SigningKey> keys;  // secrets: never logged
  // Payloads signed with a key id not read yet: `held` waits for the next read of the keys,
  // `rechecking` for the read in flight (each is verified once more against its answer).
  std::deque<std::pair<std::string, std::string>> held, rechecking;
  bool ever_streaming = false;
  bool gap_pending = false;
  // A gap (notifications lost while not listening) is open from LISTEN until its widening is
  // applied: the verdict is degraded meanwhile (promise 8). gap_at: the widening's position,
  // 0 until it is delivered.
  bool gap_open = false;
  Position gap_at = 0;
  bool drain_pending = false;  // libpq may hold notifications not handled yet
  std::deque<std::pair<std::string, std::string>> backlog;  // read before a failure

  std::vector<std::pair<std::string, std::string>> rule_tables;  // schema, table
  std::unordered_map<std::string, Table> tables;                 // by "schema.table"

  Position seq = 0, confirmed = 0;
  std::deque<std::pair<Position, TimePoint>> unconfirmed;  // sampled, for the lag
  NotifyCounters counters;
  std::uint64_t changes = 0, transactions = 0;
  RowImage new_img, old_img;

  Impl(NotifySource& s, NotifyOptions o, const rules::RuleSet& rules, ChangeSink& k)
      : AsyncCore(s, k, detail::async_options("notify", "pgbust-notify", o)), opt(std::move(o)) {
    // One listener per set of channels across hosts with the same config (the others standby).
    base_.lock = "pgbust:notify:" + join(opt.notify.channels, ",");
    set_rules(rules);
  }

  void rules_changed(const rules::RuleSet& rules) override { set_rules(rules); }
  void set_rules(const rules::RuleSet& rules) {
    rule_tables.clear();
    for (auto& [key, t] : tables) t.has_rules = false;
    const auto& only = opt.notify.tables;
    auto named = rules.tables();
    for (const std::string& q : only)
      if (std::find(named.begin(), named.end(), q) == named.end())
        spdlog::warn("notify: sources.notify.tables names {}, which no rule names", q);
    for (const std::string& q : named) {
      auto dot = q.find('.');
      std::string schema = q.substr(0, dot), table = q.substr(dot + 1);
      // The gap policy covers the tables whose triggers notify (all of them unless listed).
      if (only.empty() || std::find(only.begin(), only.end(), q) != only.end())
        rule_tables.emplace_back(schema, table);
      Table& t = *table_for(schema, table);
      t.has_rules = true;
      t.needed.clear();
      for (const std::string& col : rules.columns_needed(schema, table)) {
        t.needed.insert(col);
        add_column(t, col);
      }
    }
  }

  // The table's entry, created on first use; nullptr past kMaxTables (payloads naming ever
  // new tables cannot grow memory without bound; rule tables are created up front).
  Table* table_for(const std::string& schema, const std::string& table) {
    std::string key = schema + "." + table;
    auto it = tables.find(key);
    if (it != tables.end()) return &it->second;
    if (tables.size() >= kMaxTables + rule_tables.size()) return nullptr;
    Table& t = tables[key];
    t.info->schema = schema;
    t.info->name = table;
    return &t;
  }

  // The column's index, adding it (a new generation of the layout) when first seen.
  int add_column(Table& t, const std::string& col) {
    auto it = t.index.find(col);
    if (it != t.index.end()) return it->second;
    if (t.info->columns.size() >= kMaxColumns) return -1;
    int idx = static_cast<int>(t.info->columns.size());
    t.info->columns.push_back(col);
    t.info->key.push_back(false);
    ++t.info->generation;
    t.index.emplace(col, idx);
    return idx;
  }

  // --- logging -------------------------------------------------------------------------

  bool line_allowed(TimePoint now) {
    if (now - lines.window >= opt.log_interval) {
      if (lines.held > 0)
        session_.log(spdlog::level::warn,
                     "{} more payload problem(s) not logged in the last {:.0f}s (all counted)",
                     lines.held, seconds(opt.log_interval));
      lines = LineBudget{now, 0, 0};
    }
    if (lines.used < kMaxLinesPerInterval) {
      ++lines.used;
      return true;
    }
    ++lines.held;
    return false;
  }

  void payload_problem(const std::string& what, TimePoint now) {
    session_.count_error(what);
    if (line_allowed(now)) session_.log(spdlog::level::warn, "{}", what);
  }

  // --- connection phases ---------------------------------------------------------------

  void on_connected(TimePoint now) override {
    std::string sql, names;
    for (const auto& ch : opt.notify.channels) {
      sql += "LISTEN " + pg::quote_ident(ch) + ";";
      names += (names.empty() ? "" : ", ") + ch;
    }
    if (opt.notify.verify) sql += kReadKeys;
    session_.log(spdlog::level::info, "connected to {}; LISTEN {}", server(), names);
    conn_.send(sql);
    deadline_at = now + opt.query_timeout;
  }

  void become_streaming(TimePoint now) {
    bool first = !ever_streaming;
    ever_streaming = true;
    session_.up(now);
    session_.progress(now);  // LISTEN is active: nothing after it fails by itself
    deadline_at = kNever;
    last_traffic = now;
    ++counters.gaps;
    const char* why = first ? "first start" : "reconnected";
    if (opt.notify.on_gap == "ignore") {
      session_.log(spdlog::level::warn,
                   "listening on {} ({}); on_gap is 'ignore': changes committed while not "
                   "listening were NOT invalidated",
                   server(), why);
    } else {
      gap_pending = true;
      gap_open = true;
      session_.log(spdlog::level::warn,
                   "listening on {} ({}); notifications sent while not listening are lost, so "
                   "every rule of {} table(s) widens once (on_gap: widen)",
                   server(), why, rule_tables.size());
    }
  }

  // The keys from a read of pgbust.notify_key (rows: id, hex of the secret).
  void take_keys(const pg::Result& res, TimePoint now) {
    std::vector<notify::SigningKey> read;
    for (int i = 0; i < PQntuples(res.get()); ++i) {
      auto secret = notify::from_hex(PQgetvalue(res.get(), i, 1));
      if (!secret || secret->empty()) continue;
      read.push_back({PQgetvalue(res.get(), i, 0), std::move(*secret)});
    }
    ++counters.key_reads;
    if (read.empty())
      throw ConnectionError(
          "pgbust.notify_key on " + server() +
          " holds no key: signed payloads cannot be verified; run `pgbust setup --notify "
          "--apply` (or set sources.notify.verify: false to accept unsigned payloads)");
    std::string ids;
    for (const auto& k : read) ids += (ids.empty() ? "" : ", ") + quote_for_log(k.id);
    if (keys.empty() || keys.size() != read.size() ||
        !std::equal(keys.begin(), keys.end(), read.begin(),
                    [](const auto& a, const auto& b) { return a.id == b.id; }))
      session_.log(spdlog::level::info, "NOTIFY signing keys read from {}: {}", server(), ids);
    keys = std::move(read);
    (void)now;
  }

  void on_lost() noexcept override {
    // Keep what libpq already read: the gap policy covers what was not.
    for (auto* q : {&rechecking, &held})
      for (auto& n : *q) backlog.push_back(std::move(n));
    rechecking.clear();
    held.clear();
    key_read_in_flight = key_read_wanted = false;
    if (conn_.connected())
      while (PGnotify* n = PQnotifies(conn_.get())) {
        pg::Buffer holder(reinterpret_cast<char*>(n));
        backlog.emplace_back(n->relname ? n->relname : "", n->extra ? n->extra : "");
      }
    keepalive_in_flight = gap_pending = drain_pending = false;
    gap_at = 0;  // the next connection's widening closes the gap (it stays open until then)
    deadline_at = kNever;
  }

  // --- delivering ------------------------------------------------------------------------

  bool reading() const {
    return !stopped() && sink_.accepting() && !drain_pending && backlog.empty();
  }

  void commit(TimePoint now) {
    Position p = ++seq;
    ++transactions;
    if (unconfirmed.empty() || now - unconfirmed.back().second >= std::chrono::milliseconds(100))
      unconfirmed.emplace_back(p, now);
    sink_.commit(self_, p, wall_us());
  }

  void widen(const std::string& schema, const std::string& table, Unknown why) {
    sink_.widen_table(self_, schema, table, why);
    ++counters.widened_tables;
  }

  void apply_gap(TimePoint now) {
    gap_pending = false;
    sink_.begin(self_);
    for (const auto& [schema, table] : rule_tables) widen(schema, table, Unknown::NotifyGap);
    gap_at = seq + 1;  // commit()'s position; set first: the sink may confirm from inside it
    commit(now);
  }

  // Fills `out` from a payload image; columns it lacks are unknown for `missing`.
  void fill(Table& t, const notify::Image& img, RowImage& out, Unknown missing, TimePoint now) {
    for (const auto& c : img.columns) add_column(t, c.name);
    out.values.assign(t.info->columns.size(), Datum::unknown(missing));
    out.missing_why = missing;
    for (const auto& c : img.columns) {
      auto it = t.index.find(c.name);
      if (it == t.index.end()) continue;
      Datum& d = out.values[static_cast<std::size_t>(it->second)];
      if (c.state == Datum::State::Value)
        d = Datum::value(c.text);
      else if (c.state == Datum::State::Null)
        d = Datum::null();
      else
        d = Datum::unknown(Unknown::NotifyMalformed);
    }
    if (missing != Unknown::ColumnMissing) return;
    for (const auto& col : t.needed) {
      auto it = t.index.find(col);
      if (it == t.index.end() ||
          out.values[static_cast<std::size_t>(it->second)].state != Datum::State::Unknown ||
          out.values[static_cast<std::size_t>(it->second)].why != Unknown::ColumnMissing)
        continue;
      if (t.warned.insert(col).second)
        payload_problem(fmt::format("the trigger of {} does not send column {}, which the rules "
                                    "need: they widen for it; run `pgbust setup --notify` again",
                                    quote_for_log(t.info->qualified()), quote_for_log(col)),
                        now);
    }
  }

  // Verifies a payload's signature; the JSON to read, or nullopt when it was rejected or is
  // held until the keys are read again. `last_chance`: the keys were just read for it.
  std::optional<std::string_view> verified(const std::string& channel, const std::string& text,
                                           bool last_chance, TimePoint now) {
    auto v = notify::verify_payload(text, keys);
    if (!opt.notify.verify) return v.reject == notify::Reject::Unsigned ? text : v.envelope_body;
    if (v.reject == notify::Reject::None) return v.body;
    if (v.reject == notify::Reject::UnknownKey && !last_chance && held.size() < kMaxHeld) {
      // Signed with a key not read yet (a rotation?): read the keys again, then decide.
      held.emplace_back(channel, text);
      key_read_wanted = true;
      return std::nullopt;
    }
    ++counters.rejected[static_cast<int>(v.reject)];
    std::string why;
    switch (v.reject) {
      case notify::Reject::Unsigned:
        why =
            "it is not signed (a NOTIFY sent by hand, or by a trigger older than the signing "
            "ones: run `pgbust setup --notify --apply` again)";
        break;
      case notify::Reject::Malformed:
        why = "its signature envelope is not sig1:<key id>:<64 hex digits>:<JSON>";
        break;
      case notify::Reject::UnknownKey:
        why = "it names signing key " + std::string(quote_for_log(v.key_id)) +
              ", which pgbust.notify_key does not hold";
        break;
      default:
        why = "its signature does not match (forged, or altered)";
        break;
    }
    payload_problem(fmt::format("rejected payload on channel {} ({}): {}; nothing deleted; "
                                "payload: {}",
                                quote_for_log(channel), notify::reject_label(v.reject), why,
                                notify::payload_prefix(text)),
                    now);
    return std::nullopt;
  }

  void handle(const std::string& channel, const std::string& raw, TimePoint now,
              bool last_chance = false) {
    if (!last_chance) ++counters.notifications;
    auto body = verified(channel, raw, last_chance, now);
    if (!body) return;
    std::string_view text = *body;
    auto r = notify::parse_payload(text);
    if (!r.payload) {
      ++counters.malformed;
      bool known = !r.table.empty();
      payload_problem(
          fmt::format("malformed payload on channel {}: {}; {}; payload: {}",
                      quote_for_log(channel), r.error,
                      known ? "widening every rule of " + quoted_table(r.schema, r.table)
                            : std::string("no table named, nothing to widen"),
                      notify::payload_prefix(text)),
          now);
      if (known) {
        sink_.begin(self_);
        widen(r.schema, r.table, Unknown::NotifyMalformed);
        commit(now);
      }
      return;
    }
    notify::Payload& p = *r.payload;
    for (const auto& w : p.warnings)
      payload_problem(fmt::format("payload on channel {} for {}: {}", quote_for_log(channel),
                                  quoted_table(p.schema, p.table), w),
                      now);
    Table* tp = table_for(p.schema, p.table);
    if (tp == nullptr || !tp->has_rules) {
      ++counters.unknown_tables;
      payload_problem(fmt::format("payload on channel {} for {}, which no rule names (a trigger "
                                  "left from older rules?); payload: {}",
                                  quote_for_log(channel), quoted_table(p.schema, p.table),
                                  notify::payload_prefix(text)),
                      now);
      if (tp == nullptr) return;  // no rules, and too many such tables to remember
    }
    Table& t = *tp;
    if (p.oversized) {
      ++counters.oversized;
      payload_problem(fmt::format("payload on channel {} for {} was too large for NOTIFY: the "
                                  "trigger sent {}; rules widen for the rest",
                                  quote_for_log(channel), quoted_table(p.schema, p.table),
                                  p.new_row.present || p.old_row.present ? "key columns only"
                                                                         : "no row values"),
                      now);
    }
    ++changes;
    sink_.begin(self_);
    bool need_new = p.op == Op::Insert || p.op == Op::Update;
    bool need_old = p.op == Op::Update || p.op == Op::Delete;
    if ((need_new && !p.new_row.present) || (need_old && !p.old_row.present)) {
      widen(p.schema, p.table, Unknown::NotifyOversized);  // an oversized payload without rows
    } else {
      Unknown missing = p.oversized ? Unknown::NotifyOversized : Unknown::ColumnMissing;
      ChangeEvent ev;
      ev.source = SourceKind::Notify;
      ev.op = p.op;
      ev.table = t.info.get();
      if (need_new) {
        fill(t, p.new_row, new_img, missing, now);
        ev.new_row = &new_img;
      }
      if (need_old) {
        fill(t, p.old_row, old_img, missing, now);
        ev.old_row = &old_img;
      }
      sink_.change(self_, ev);
    }
    commit(now);
  }

  // Sends a read of the keys when a payload named a key id not read yet and the connection
  // is free (one query at a time: a keepalive may be in flight).
  void maybe_read_keys(TimePoint now) {
    if (!key_read_wanted || key_read_in_flight || keepalive_in_flight) return;
    if (session_.phase() != Phase::Up || stopped()) return;
    conn_.send(kReadKeys);
    key_read_in_flight = true;
    key_read_wanted = false;
    deadline_at = now + opt.query_timeout;
    // The read's snapshot is taken after these payloads were committed (they were received
    // before it was sent): its answer holds their key, or the key does not exist.
    for (auto& n : held) rechecking.push_back(std::move(n));
    held.clear();
  }

  // Handles what has been read, while the sink accepts, up to max_per_wakeup.
  void process(TimePoint now) {
    if (session_.phase() != Phase::Up || stopped() || !sink_.accepting()) return;
    if (gap_pending) apply_gap(now);
    maybe_read_keys(now);
    for (std::size_t handled = 0; handled < opt.max_per_wakeup; ++handled) {
      if (!sink_.accepting()) {
        drain_pending = true;
        return;
      }
      if (!backlog.empty()) {
        auto [channel, payload] = std::move(backlog.front());
        backlog.pop_front();
        handle(channel, payload, now);
        continue;
      }
      if (!key_read_in_flight && !rechecking.empty()) {
        auto [channel, payload] = std::move(rechecking.front());
        rechecking.pop_front();
        handle(channel, payload, now, true);
        continue;
      }
      PGnotify* n = PQnotifies(conn_.get());
      if (n == nullptr) {
        drain_pending = false;
        return;
      }
      pg::Buffer holder(reinterpret_cast<char*>(n));
      handle(n->relname ? n->relname : "", n->extra ? n->extra : "", now);
    }
    drain_pending = true;
  }

  // --- loop callbacks --------------------------------------------------------------------

  void on_input(short revents, TimePoint now) override {
    if (revents & POLLIN) last_traffic = now;
    pg::Result res;
    if (session_.phase() == Phase::Starting) {
      if (conn_.take_result(res, opt.notify.verify ? kReadKeysWhat : "LISTEN")) {
        if (opt.notify.verify) take_keys(res, now);
        become_streaming(now);
      }
    } else if (keepalive_in_flight && conn_.take_result(res, "a keepalive query")) {
      keepalive_in_flight = false;
      deadline_at = kNever;
    } else if (key_read_in_flight && conn_.take_result(res, kReadKeysWhat)) {
      key_read_in_flight = false;
      deadline_at = kNever;
      take_keys(res, now);
    }
    drain_pending = true;  // PQconsumeInput may have queued notifications
    process(now);
  }

  void on_tick(TimePoint now) override {
    if (session_.phase() == Phase::Starting) {
      if (now >= deadline_at)
        throw ConnectionError(fmt::format("no answer to LISTEN within {:.0f}s from {}",
                                          seconds(opt.query_timeout), server()));
      return;
    }
    if ((keepalive_in_flight || key_read_in_flight) && now >= deadline_at)
      throw ConnectionError(
          fmt::format("no answer to {} within {:.0f}s from {}",
                      keepalive_in_flight ? "a keepalive query" : "a read of pgbust.notify_key",
                      seconds(opt.query_timeout), server()));
    if (!keepalive_in_flight && !key_read_in_flight && reading() &&
        now >= last_traffic + opt.keepalive) {
      conn_.send("SELECT 1");
      keepalive_in_flight = true;
      deadline_at = now + opt.query_timeout;
    }
    process(now);
  }

  TimePoint next_tick() const override {
    if (session_.phase() == Phase::Starting) return deadline_at;
    if (stopped()) return kNever;
    if ((gap_pending || drain_pending || !backlog.empty() ||
         (!rechecking.empty() && !key_read_in_flight) ||
         (key_read_wanted && !keepalive_in_flight && !key_read_in_flight)) &&
        sink_.accepting())
      return TimePoint{};
    TimePoint t = deadline_at;
    if (!keepalive_in_flight && !key_read_in_flight && reading())
      t = std::min(t, last_traffic + opt.keepalive);
    return t;
  }

  bool want_input() const override { return session_.phase() == Phase::Starting || reading(); }

  void fill_status(SourceStatus& s) const override {
    s.changes = changes;
    s.transactions = transactions;
    s.position = self_.format_position(confirmed);
    s.lag_seconds = unconfirmed.empty() ? 0 : seconds(Clock::now() - unconfirmed.front().second);
    if (gap_open) s.degraded = "NOTIFY gap: the widening after LISTEN is not applied yet";
    if (opt.notify.verify)
      for (auto r : {notify::Reject::Unsigned, notify::Reject::Malformed,
                     notify::Reject::UnknownKey, notify::Reject::BadSignature})
        s.rejected.emplace_back(notify::reject_label(r), counters.rejected[static_cast<int>(r)]);
  }

  void confirm(Position p) override {
    confirmed = std::max(confirmed, p);
    if (gap_open && gap_at != 0 && p >= gap_at) {
      gap_open = false;
      gap_at = 0;
      session_.log(spdlog::level::info, "NOTIFY gap closed: the widening is applied");
    }
    while (!unconfirmed.empty() && unconfirmed.front().first <= p) unconfirmed.pop_front();
  }
};

NotifySource::NotifySource(NotifyOptions options, const rules::RuleSet& rules, ChangeSink& sink) {
  if (options.notify.channels.empty())
    throw Error("sources.notify: at least one channel is needed");
  impl_ = std::make_unique<Impl>(*this, std::move(options), rules, sink);
}

NotifySource::~NotifySource() = default;

const NotifyCounters& NotifySource::counters() const {
  return static_cast<const Impl&>(*impl_).counters;
}

}  // namespace pgbust
