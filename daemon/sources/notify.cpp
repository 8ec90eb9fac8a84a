// The LISTEN/NOTIFY source: payload parsing, connection phases, the gap policy after every
// (re)connection, and back-pressure that stops reading without dropping what was read.
#include "pgbust/sources/notify.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "pgbust/core/json.hpp"
#include "pgbust/core/quote.hpp"
#include "pgbust/pg/async.hpp"

namespace pgbust::notify {

namespace {

const char* kShape = "{\"schema\", \"table\", \"op\", \"new\": {...}, \"old\": {...}}";

// Reads "new" / "old". Absent or null: not present. False (with `error`) when unusable.
bool read_image(const json::Value* v, const char* member, Image& out, std::string& error,
                std::vector<std::string>& warnings) {
  if (v == nullptr || v->is_null()) return true;
  if (!v->is_object()) {
    error = std::string("\"") + member +
            "\" must be an object of column names to text values, not " +
            std::string(json::to_string(v->type()));
    return false;
  }
  out.present = true;
  out.columns.reserve(v->members().size());
  for (const auto& [name, value] : v->members()) {
    Column c;
    c.name = name;
    switch (value.type()) {
      case json::Value::Type::String:
      case json::Value::Type::Number:
        c.text = value.text();
        break;
      case json::Value::Type::Null:
        c.state = Datum::State::Null;
        break;
      case json::Value::Type::Bool:
        c.text = value.as_bool() ? "t" : "f";
        break;
      case json::Value::Type::Array:
      case json::Value::Type::Object:
        c.state = Datum::State::Unknown;
        warnings.push_back("column " + quote_for_log(name) + " of \"" + member + "\" is a JSON " +
                           std::string(json::to_string(value.type())) +
                           ", not PostgreSQL text: treated as unknown");
        break;
    }
    out.columns.push_back(std::move(c));
  }
  return true;
}

bool non_empty_string(const json::Value* v) {
  return v && v->is_string() && !v->text().empty();
}

}  // namespace

ParseResult parse_payload(std::string_view text) {
  ParseResult r;
  json::Value doc;
  try {
    doc = json::parse(text);
  } catch (const json::ParseError& e) {
    r.error = std::string("not JSON (") + e.what() + "); expected " + kShape;
    return r;
  }
  if (!doc.is_object()) {
    r.error = "expected a JSON object " + std::string(kShape) + ", got " +
              std::string(json::to_string(doc.type()));
    return r;
  }
  Payload p;
  // The table first, so that a later problem can still widen for it.
  if (const json::Value* s = doc.find("schema"); s && !s->is_null()) {
    if (!non_empty_string(s)) {
      r.error = "\"schema\" must be a non-empty string";
      return r;
    }
    p.schema = s->text();
  }
  const json::Value* t = doc.find("table");
  if (!non_empty_string(t)) {
    r.error = t ? "\"table\" must be a non-empty string"
                : "missing \"table\"; expected " + std::string(kShape);
    return r;
  }
  p.table = t->text();
  r.schema = p.schema;
  r.table = p.table;
  const json::Value* op = doc.find("op");
  if (op == nullptr || !op->is_string()) {
    r.error = "missing \"op\" (a string: insert, update, delete or truncate)";
    return r;
  }
  auto parsed = parse_op(op->text());
  if (!parsed) {
    r.error =
        "unknown op " + json::quote(op->text()) + "; expected insert, update, delete or truncate";
    return r;
  }
  p.op = *parsed;
  for (const char* flag : {"oversized", "truncated"}) {
    const json::Value* f = doc.find(flag);
    if (f == nullptr || f->is_null()) continue;
    if (!f->is_bool()) {
      r.error = std::string("\"") + flag + "\" must be true or false";
      return r;
    }
    p.oversized = p.oversized || f->as_bool();
  }
  if (!read_image(doc.find("new"), "new", p.new_row, r.error, p.warnings) ||
      !read_image(doc.find("old"), "old", p.old_row, r.error, p.warnings))
    return r;
  if (!p.oversized) {
    bool need_new = p.op == Op::Insert || p.op == Op::Update;
    bool need_old = p.op == Op::Update || p.op == Op::Delete;
    if (need_new && !p.new_row.present) {
      r.error = "an " + std::string(to_string(p.op)) + " payload needs \"new\" (the new row)";
      return r;
    }
    if (need_old && !p.old_row.present) {
      r.error = std::string("an ") + (p.op == Op::Update ? "update" : "delete") +
                " payload needs \"old\" (the old row)";
      return r;
    }
  }
  r.payload = std::move(p);
  return r;
}

std::string payload_prefix(std::string_view text, std::size_t max) {
  if (text.size() <= max) return json::quote(text);
  std::size_t cut = max;
  // Do not split a UTF-8 sequence: back up over continuation bytes (at most 3).
  for (int i = 0; i < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80; ++i)
    --cut;
  return json::quote(text.substr(0, cut)) + "...";
}

}  // namespace pgbust::notify

namespace pgbust {

namespace {

constexpr std::size_t kMaxColumns = 1600;  // PostgreSQL's own limit per table
constexpr std::size_t kMaxTables = 10000;  // tables remembered from payloads
constexpr std::size_t kMaxLinesPerInterval = 10;

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// "schema.table" from a payload, quoted for a log line.
std::string quoted_table(const std::string& schema, const std::string& table) {
  return quote_for_log(schema + "." + table);
}

}  // namespace

struct NotifySource::Impl {
  enum class Phase { Idle, Connecting, Starting, Streaming, BackingOff, Stopped };

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

  NotifySource& self;
  NotifyOptions opt;
  ChangeSink& sink;
  std::string name = "notify";
  pg::AsyncConn conn;
  pg::Backoff backoff;
  pg::LogLimiter conn_log;
  LineBudget lines;
  Phase phase = Phase::Idle;
  bool stopped = false;
  bool ever_streaming = false;
  TimePoint retry_at = Clock::now();
  TimePoint deadline_at = kNever;  // connect / LISTEN / keepalive answer
  TimePoint last_traffic{};
  bool keepalive_in_flight = false;
  bool gap_pending = false;
  bool drain_pending = false;  // libpq may hold notifications not handled yet
  std::deque<std::pair<std::string, std::string>> backlog;  // read before a failure

  std::vector<std::pair<std::string, std::string>> rule_tables;  // schema, table
  std::unordered_map<std::string, Table> tables;                 // by "schema.table"

  Position seq = 0, confirmed = 0;
  std::deque<std::pair<Position, TimePoint>> unconfirmed;  // sampled, for the lag
  NotifyCounters counters;
  SourceStatus st;
  RowImage new_img, old_img;

  Impl(NotifySource& s, NotifyOptions o, const rules::RuleSet& rules, ChangeSink& k)
      : self(s),
        opt(std::move(o)),
        sink(k),
        backoff(opt.backoff_min, opt.backoff_max),
        conn_log(opt.log_interval) {
    set_rules(rules);
  }

  const char* phase_name() const {
    switch (phase) {
      case Phase::Idle:
      case Phase::Connecting:
        return "connecting";
      case Phase::Starting:
        return "starting";
      case Phase::Streaming:
        return stopped ? "stopped" : "streaming";
      case Phase::BackingOff:
        return "backing off";
      case Phase::Stopped:
        return "stopped";
    }
    return "?";
  }

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
        spdlog::warn(
            "notify: {}: {} more payload problem(s) not logged in the last {:.0f}s "
            "(all counted)",
            phase_name(), lines.held, seconds(opt.log_interval));
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
    ++st.errors;
    st.last_error = what;
    if (line_allowed(now)) spdlog::warn("notify: {}: {}", phase_name(), what);
  }

  // --- connection phases ---------------------------------------------------------------

  void start_connect(TimePoint now) {
    if (ever_streaming || backoff.failures() > 0) ++st.reconnects;
    phase = Phase::Connecting;
    deadline_at = now + opt.connect_timeout;
    conn.start(opt.conninfo, "pgbust-notify",
               [](std::string_view notice) { spdlog::info("notify: server notice: {}", notice); });
  }

  void on_connected(TimePoint now) {
    phase = Phase::Starting;
    std::string sql, names;
    for (const auto& ch : opt.notify.channels) {
      sql += "LISTEN " + pg::quote_ident(ch) + ";";
      names += (names.empty() ? "" : ", ") + ch;
    }
    spdlog::info("notify: starting: connected to {}; LISTEN {}", conn.server(), names);
    conn.send(sql);
    deadline_at = now + opt.query_timeout;
  }

  void become_streaming(TimePoint now) {
    bool first = !ever_streaming;
    phase = Phase::Streaming;
    ever_streaming = true;
    backoff.reset();
    conn_log.reset();
    deadline_at = kNever;
    last_traffic = now;
    ++counters.gaps;
    const char* why = first ? "first start" : "reconnected";
    if (opt.notify.on_gap == "ignore") {
      spdlog::warn(
          "notify: streaming: listening on {} ({}); on_gap is 'ignore': changes "
          "committed while not listening were NOT invalidated",
          conn.server(), why);
    } else {
      gap_pending = true;
      spdlog::warn(
          "notify: streaming: listening on {} ({}); notifications sent while not "
          "listening are lost, so every rule of {} table(s) widens once (on_gap: widen)",
          conn.server(), why, rule_tables.size());
    }
  }

  void fail(const std::string& error, TimePoint now) {
    const char* was = phase_name();
    std::string msg = pg::one_line(error);
    // Keep what libpq already read: the gap policy covers what was not.
    if (conn.connected())
      while (PGnotify* n = PQnotifies(conn.get())) {
        pg::Buffer holder(reinterpret_cast<char*>(n));
        backlog.emplace_back(n->relname ? n->relname : "", n->extra ? n->extra : "");
      }
    conn.close();
    phase = stopped ? Phase::Stopped : Phase::BackingOff;
    keepalive_in_flight = gap_pending = drain_pending = false;
    deadline_at = kNever;
    ++st.errors;
    st.last_error = msg;
    auto delay = backoff.next();
    retry_at = now + delay;
    std::uint64_t held = 0;
    if (conn_log.allow(msg, now, held))
      spdlog::warn("notify: {}: {}; reconnecting in {:.2f}s{}", was, msg, seconds(delay),
                   held ? fmt::format(" ({} identical errors not logged)", held) : "");
  }

  // --- delivering ------------------------------------------------------------------------

  bool reading() const { return !stopped && sink.accepting() && !drain_pending && backlog.empty(); }

  void commit(TimePoint now) {
    Position p = ++seq;
    ++st.transactions;
    if (unconfirmed.empty() || now - unconfirmed.back().second >= std::chrono::milliseconds(100))
      unconfirmed.emplace_back(p, now);
    sink.commit(self, p, wall_us());
  }

  void widen(const std::string& schema, const std::string& table, Unknown why) {
    sink.widen_table(self, schema, table, why);
    ++counters.widened_tables;
  }

  void apply_gap(TimePoint now) {
    gap_pending = false;
    sink.begin(self);
    for (const auto& [schema, table] : rule_tables) widen(schema, table, Unknown::NotifyGap);
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

  void handle(const std::string& channel, const std::string& text, TimePoint now) {
    ++counters.notifications;
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
        sink.begin(self);
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
    ++st.changes;
    sink.begin(self);
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
      sink.change(self, ev);
    }
    commit(now);
  }

  // Handles what has been read, while the sink accepts, up to max_per_wakeup.
  void process(TimePoint now) {
    if (phase != Phase::Streaming || stopped || !sink.accepting()) return;
    if (gap_pending) apply_gap(now);
    for (std::size_t handled = 0; handled < opt.max_per_wakeup; ++handled) {
      if (!sink.accepting()) {
        drain_pending = true;
        return;
      }
      if (!backlog.empty()) {
        auto [channel, payload] = std::move(backlog.front());
        backlog.pop_front();
        handle(channel, payload, now);
        continue;
      }
      PGnotify* n = PQnotifies(conn.get());
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

  void on_ready(short revents) {
    TimePoint now = Clock::now();
    try {
      if (phase == Phase::Connecting) {
        if (conn.continue_connect()) on_connected(now);
        return;
      }
      if (phase != Phase::Starting && phase != Phase::Streaming) return;
      conn.pump(revents);
      if (revents & POLLIN) last_traffic = now;
      pg::Result res;
      if (phase == Phase::Starting) {
        if (conn.take_result(res, "LISTEN")) become_streaming(now);
      } else if (keepalive_in_flight && conn.take_result(res, "a keepalive query")) {
        keepalive_in_flight = false;
        deadline_at = kNever;
      }
      drain_pending = true;  // PQconsumeInput may have queued notifications
      process(now);
    } catch (const std::exception& e) {
      fail(e.what(), now);
    }
  }

  void on_timer(TimePoint now) {
    try {
      switch (phase) {
        case Phase::Idle:
        case Phase::BackingOff:
          if (now >= retry_at && !stopped) start_connect(now);
          break;
        case Phase::Connecting:
          if (now >= deadline_at)
            throw ConnectionError(
                fmt::format("no connection within {:.0f}s", seconds(opt.connect_timeout)));
          break;
        case Phase::Starting:
          if (now >= deadline_at)
            throw ConnectionError(fmt::format("no answer to LISTEN within {:.0f}s from {}",
                                              seconds(opt.query_timeout), conn.server()));
          break;
        case Phase::Streaming:
          if (keepalive_in_flight && now >= deadline_at)
            throw ConnectionError(
                fmt::format("no answer to a keepalive query within {:.0f}s "
                            "from {}",
                            seconds(opt.query_timeout), conn.server()));
          if (!keepalive_in_flight && reading() && now >= last_traffic + opt.keepalive) {
            conn.send("SELECT 1");
            keepalive_in_flight = true;
            deadline_at = now + opt.query_timeout;
          }
          process(now);
          break;
        case Phase::Stopped:
          break;
      }
    } catch (const std::exception& e) {
      fail(e.what(), now);
    }
  }

  TimePoint deadline() const {
    switch (phase) {
      case Phase::Idle:
      case Phase::BackingOff:
        return stopped ? kNever : retry_at;
      case Phase::Connecting:
      case Phase::Starting:
        return deadline_at;
      case Phase::Streaming: {
        if (stopped) return kNever;
        if ((gap_pending || drain_pending || !backlog.empty()) && sink.accepting())
          return TimePoint{};
        TimePoint t = deadline_at;
        if (!keepalive_in_flight && reading()) t = std::min(t, last_traffic + opt.keepalive);
        return t;
      }
      case Phase::Stopped:
        return kNever;
    }
    return kNever;
  }

  short events() const {
    switch (phase) {
      case Phase::Connecting:
        return conn.events(false);
      case Phase::Starting:
        return conn.events(true);
      case Phase::Streaming:
        return conn.events(reading());
      default:
        return 0;
    }
  }

  SourceStatus status() const {
    SourceStatus s = st;
    switch (phase) {
      case Phase::Idle:
      case Phase::Connecting:
        s.state = SourceState::Connecting;
        break;
      case Phase::Starting:
        s.state = SourceState::Starting;
        break;
      case Phase::Streaming:
        s.state = stopped ? SourceState::Stopped : SourceState::Streaming;
        break;
      case Phase::BackingOff:
        s.state = SourceState::BackingOff;
        break;
      case Phase::Stopped:
        s.state = SourceState::Stopped;
        break;
    }
    s.position = self.format_position(confirmed);
    s.lag_seconds = unconfirmed.empty() ? 0 : seconds(Clock::now() - unconfirmed.front().second);
    return s;
  }

  void confirm(Position p) {
    confirmed = std::max(confirmed, p);
    while (!unconfirmed.empty() && unconfirmed.front().first <= p) unconfirmed.pop_front();
  }
};

NotifySource::NotifySource(NotifyOptions options, const rules::RuleSet& rules, ChangeSink& sink)
    : impl_(std::make_unique<Impl>(*this, std::move(options), rules, sink)) {
  if (impl_->opt.notify.channels.empty())
    throw Error("sources.notify: at least one channel is needed");
}

NotifySource::~NotifySource() {
  close();
}

void NotifySource::rules_changed(const rules::RuleSet& rules) {
  impl_->set_rules(rules);
}
const NotifyCounters& NotifySource::counters() const {
  return impl_->counters;
}
const std::string& NotifySource::name() const {
  return impl_->name;
}
void NotifySource::confirm(Position position) {
  impl_->confirm(position);
}
SourceStatus NotifySource::status() const {
  return impl_->status();
}
std::string NotifySource::format_position(Position position) const {
  return "#" + std::to_string(position);
}

void NotifySource::stop_reading() {
  impl_->stopped = true;
  if (impl_->phase != Impl::Phase::Streaming) {
    impl_->conn.close();
    impl_->phase = Impl::Phase::Stopped;
  }
}

void NotifySource::close() noexcept {
  impl_->conn.close();
  impl_->phase = Impl::Phase::Stopped;
  impl_->stopped = true;
}

int NotifySource::fd() const {
  return impl_->conn.fd();
}
short NotifySource::events() const {
  return impl_->events();
}
void NotifySource::on_ready(short revents) {
  impl_->on_ready(revents);
}
TimePoint NotifySource::deadline() const {
  return impl_->deadline();
}
void NotifySource::on_timer(TimePoint now) {
  impl_->on_timer(now);
}

}  // namespace pgbust
