// The watermark poll source: catalog lookup, a round of count + paged fetches per table every
// interval, change events with what polling can know, watermarks persisted once confirmed.
#include "pgbust/sources/poll.hpp"
#include "pgbust/core/text.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <deque>
#include <map>
#include <set>

#include "pgbust/core/quote.hpp"
#include "pgbust/pg/async.hpp"
#include "pgbust/sources/poll_plan.hpp"
#include "pgbust/sources/poll_state.hpp"

namespace pgbust {

namespace {

using poll::Mode;

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string list(const std::vector<std::string>& items) {
  return "[" + join(items, ", ") + "]";
}

std::int64_t to_int(const char* text) {
  std::int64_t v = 0;
  std::string_view s(text);
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

}  // namespace

struct PollSource::Impl {
  enum class Phase { Idle, Connecting, Starting, Streaming, BackingOff, Stopped };
  enum class Step { None, Setup, Catalog, Init, Stats, FirstPage, NextPage };

  struct Table {
    config::PollTable cfg;
    std::string qualified, sql_name;
    std::filesystem::path file;
    poll::Loaded loaded;  // the state file as read at start
    bool state_checked = false;
    std::vector<std::string> needed;  // columns the rules read
    std::set<std::string> warned;     // needed columns the table lacks, reported
    poll::Plan plan;                  // from the catalog
    std::unique_ptr<TableInfo> info = std::make_unique<TableInfo>();
    std::vector<int> cur_idx;  // select-list index of each cursor column
    int id_idx = -1;
    // Progress.
    poll::Watermark wm;         // where reading has got to (ahead of what is confirmed)
    poll::Watermark committed;  // as of the last transaction handed to the sink
    poll::Watermark confirmed;  // as persisted
    bool have_state = false;
    bool widen_once = false;
    bool deletes_seen = false;
    std::optional<std::string> threshold;  // TimeId: ids above it are inserts
    std::vector<std::string> round_cursor, page_after;
    std::deque<std::pair<TimePoint, std::vector<std::string>>> history;  // Id: cursor by time
    poll::Seen seen;

    Table(const config::PollTable& c, const PollOptions& o)
        : cfg(c), seen(o.seen_limit, c.overlap + 2 * o.poll.interval) {}
  };

  struct Snapshot {
    Position position;
    std::size_t table;
    poll::Watermark wm;
  };

  PollSource& self;
  PollOptions opt;
  ChangeSink& sink;
  std::string name = "poll";
  pg::AsyncConn conn;
  pg::Backoff backoff;
  pg::LogLimiter conn_log, state_log;
  std::vector<std::unique_ptr<Table>> tables;
  Phase phase = Phase::Idle;
  bool stopped = false, ever_streaming = false, recatalog = false;
  TimePoint retry_at = Clock::now(), deadline_at = kNever, next_round = kNever, round_started{};
  Step in_flight = Step::None, next = Step::None;
  std::size_t current = 0;  // the table being worked on
  Position seq = 0, confirmed = 0;
  std::deque<Snapshot> pending;                            // committed, not yet confirmed
  std::map<std::size_t, poll::Watermark> unsaved;          // confirmed, writing failed
  std::string save_error;                                  // why the last write failed
  std::deque<std::pair<Position, TimePoint>> unconfirmed;  // sampled, for the lag
  PollCounters counters;
  SourceStatus st;
  RowImage new_img, old_img;

  Impl(PollSource& s, PollOptions o, const rules::RuleSet& rules, ChangeSink& k)
      : self(s),
        opt(std::move(o)),
        sink(k),
        backoff(opt.backoff_min, opt.backoff_max),
        conn_log(opt.log_interval),
        state_log(opt.log_interval) {
    if (opt.poll.tables.empty()) throw Error("sources.poll: no tables configured");
    for (const auto& c : opt.poll.tables) {
      auto t = std::make_unique<Table>(c, opt);
      t->qualified = c.schema + "." + c.table;
      t->sql_name = pg::quote_ident(c.schema) + "." + pg::quote_ident(c.table);
      t->file =
          std::filesystem::path(opt.poll.state_dir) / poll::state_file_name(c.schema, c.table);
      t->loaded = poll::load(t->file);
      t->info->schema = c.schema;
      t->info->name = c.table;
      tables.push_back(std::move(t));
    }
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
    auto named = rules.tables();
    for (auto& t : tables) {
      t->needed = rules.columns_needed(t->cfg.schema, t->cfg.table);
      if (std::find(named.begin(), named.end(), t->qualified) == named.end())
        spdlog::warn("poll: {}: no rule names this table: it is polled for nothing", t->qualified);
    }
    recatalog = true;
  }

  // --- connection phases ---------------------------------------------------------------

  void start_connect(TimePoint now) {
    if (ever_streaming || backoff.failures() > 0) ++st.reconnects;
    phase = Phase::Connecting;
    deadline_at = now + opt.connect_timeout;
    conn.start(opt.conninfo, "pgbust-poll",
               [](std::string_view notice) { spdlog::info("poll: server notice: {}", notice); });
  }

  void send(Step step, const std::string& sql,
            const std::vector<std::optional<std::string>>& params, TimePoint now) {
    conn.send(sql, params);
    in_flight = step;
    // The server's statement_timeout fires first and says so; this catches a dead link.
    deadline_at = now + opt.query_timeout + std::chrono::seconds(5);
  }

  void on_connected(TimePoint now) {
    phase = Phase::Starting;
    spdlog::info("poll: starting: connected to {}; reading the catalog of {} table(s)",
                 conn.server(), tables.size());
    send(Step::Setup,
         fmt::format("SET statement_timeout = {}; SET default_transaction_read_only = on",
                     opt.query_timeout.count()),
         {}, now);
  }

  void fail(const std::string& error, TimePoint now) {
    const char* was = phase_name();
    std::string msg = pg::one_line(error);
    conn.close();
    phase = stopped ? Phase::Stopped : Phase::BackingOff;
    in_flight = next = Step::None;
    deadline_at = kNever;
    ++st.errors;
    st.last_error = msg;
    auto delay = backoff.next();
    retry_at = now + delay;
    std::uint64_t held = 0;
    if (conn_log.allow(msg, now, held))
      spdlog::warn("poll: {}: {}; reconnecting in {:.2f}s{}", was, msg, seconds(delay),
                   held ? fmt::format(" ({} identical errors not logged)", held) : "");
  }

  // --- starting: catalog and initial maxima ----------------------------------------------

  void catalog(Table& t, const PGresult* res) {
    std::vector<poll::CatalogColumn> cols;
    for (int r = 0; r < PQntuples(res); ++r)
      cols.push_back({PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2)[0],
                      PQgetvalue(res, r, 3)[0] == 't'});
    t.plan = poll::make_plan(t.cfg, cols, t.needed);
    for (const auto& c : t.plan.missing)
      if (t.warned.insert(c).second)
        spdlog::warn(
            "poll: {}: table {} has no column \"{}\", which the rules read: they widen "
            "for it",
            phase_name(), t.qualified, c);
    if (t.plan.columns != t.info->columns || t.plan.key != t.info->key) {
      t.info->columns = t.plan.columns;
      t.info->key = t.plan.key;
      ++t.info->generation;
    }
    t.cur_idx.clear();
    for (const auto& c : t.plan.cursor) t.cur_idx.push_back(t.info->column_index(c));
    t.id_idx = t.plan.id.empty() ? -1 : t.info->column_index(t.plan.id);
  }

  // After the first catalog read: use the saved watermark, or decide to start afresh.
  bool check_state(Table& t) {
    t.state_checked = true;
    const poll::Loaded& l = t.loaded;
    std::string problem;
    if (l.status == poll::Loaded::Status::Ok) {
      const poll::Watermark& w = l.watermark;
      bool fits = w.cursor.empty() || w.cursor.size() == t.plan.cursor.size();
      if (w.table == t.qualified && w.columns == t.cfg.watermark && fits) {
        t.wm = t.committed = t.confirmed = w;
        t.have_state = true;
        spdlog::info("poll: starting: {}: resuming from {} ({})", t.qualified, t.file.string(),
                     describe(t, w));
        return true;
      }
      problem = fmt::format(
          "{} was written for {} watermark {} with {} cursor value(s), but the "
          "config says {} watermark {} ({} values)",
          t.file.string(), w.table, list(w.columns), w.cursor.size(), t.qualified,
          list(t.cfg.watermark), t.plan.cursor.size());
    } else if (l.status == poll::Loaded::Status::Corrupt) {
      problem = l.error;
    }
    t.widen_once = true;
    if (problem.empty())
      spdlog::warn(
          "poll: starting: {}: no saved watermark ({}): first start; polling starts "
          "from the current maximum and every rule of the table widens once (what "
          "changed before is unknown)",
          t.qualified, t.file.string());
    else
      spdlog::error(
          "poll: starting: {}: unusable watermark state: {}; polling starts from the "
          "current maximum and every rule of the table widens once",
          t.qualified, problem);
    if (!problem.empty()) {
      ++st.errors;
      st.last_error = problem;
    }
    return false;
  }

  void init(Table& t, const PGresult* res) {
    poll::Watermark w;
    w.table = t.qualified;
    w.columns = t.cfg.watermark;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 1))
      for (int c = 1; c < PQnfields(res); ++c) w.cursor.push_back(PQgetvalue(res, 0, c));
    if (t.plan.mode == Mode::TimeId && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
      w.max_id = PQgetvalue(res, 0, 0);
    w.floor = w.cursor;
    t.wm = t.committed = w;
    t.have_state = true;
    spdlog::info("poll: starting: {}: starting at {}", t.qualified, describe(t, w));
  }

  // After each query of the starting sequence (session setup, then per table the catalog
  // and, without a usable saved watermark, the current maximum): the next one, or streaming.
  // Also run while streaming when the rules changed (from Step::None: catalog only).
  void starting_next(Step done, TimePoint now) {
    if (done == Step::Setup || done == Step::None) {
      current = 0;
    } else if (done == Step::Catalog) {
      Table& t = *tables[current];
      if (!t.state_checked) check_state(t);
      if (!t.have_state) {
        send(Step::Init, poll::init_sql(t.plan), {}, now);
        return;
      }
      ++current;
    } else if (done == Step::Init) {
      ++current;
    }
    if (current < tables.size()) {
      send(Step::Catalog, pgcatalog::kColumnsSql, {tables[current]->sql_name}, now);
      return;
    }
    recatalog = false;
    next_round = now;
    if (phase == Phase::Starting) {
      phase = Phase::Streaming;
      ever_streaming = true;
      backoff.reset();
      conn_log.reset();
      spdlog::info("poll: streaming: polling {} table(s) every {:.1f}s", tables.size(),
                   seconds(opt.poll.interval));
    }
  }

  // --- rounds ------------------------------------------------------------------------------

  std::string describe(const Table& t, const poll::Watermark& w) const {
    if (w.cursor.empty()) return "no rows yet";
    std::vector<std::string> parts;
    for (std::size_t i = 0; i < w.cursor.size() && i < t.plan.cursor.size(); ++i)
      parts.push_back(t.plan.cursor[i] + "=" + quote_for_log(w.cursor[i]));
    return join(parts, " ");
  }

  void begin_table(TimePoint now) {
    Table& t = *tables[current];
    t.round_cursor = t.wm.cursor;
    t.threshold = t.wm.max_id;
    t.page_after.clear();
    if (t.plan.mode == Mode::Id) {
      // The floor: the id cursor as it was `overlap` ago, so late commits are re-read.
      TimePoint limit = now - t.cfg.overlap;
      while (t.history.size() >= 2 && t.history[1].first <= limit) t.history.pop_front();
      if (!t.history.empty() && t.history.front().first <= limit)
        t.wm.floor = t.history.front().second;
      if (t.wm.floor.empty()) t.wm.floor = t.wm.cursor;
    }
    next = t.cfg.deletes == "count" ? Step::Stats : Step::FirstPage;
  }

  void send_stats(Table& t, TimePoint now) {
    auto q = poll::stats_query(t.plan, t.wm.count_max);
    send(Step::Stats, q.sql, q.params, now);
  }

  void stats(Table& t, const PGresult* res) {
    std::int64_t count = to_int(PQgetvalue(res, 0, 0));
    std::int64_t above = to_int(PQgetvalue(res, 0, 1));
    if (t.wm.count && count < *t.wm.count + above) {
      t.deletes_seen = true;
      ++counters.deletes;
      spdlog::info(
          "poll: streaming: {}: {} rows, expected at least {} ({} before, {} new): rows "
          "were deleted, which polling cannot see; every rule of the table widens",
          t.qualified, count, *t.wm.count + above, *t.wm.count, above);
    }
    t.wm.count = count;
    if (!PQgetisnull(res, 0, 2)) t.wm.count_max = PQgetvalue(res, 0, 2);
  }

  void send_page(Table& t, bool first, TimePoint now) {
    auto q = poll::page_query(t.plan, first, t.round_cursor, t.wm.floor, t.page_after,
                              t.cfg.overlap, opt.poll.page_size);
    send(first ? Step::FirstPage : Step::NextPage, q.sql, q.params, now);
  }

  void commit(Table& t, std::size_t index, TimePoint now) {
    Position p = ++seq;
    ++st.transactions;
    t.committed = t.wm;
    pending.push_back({p, index, t.wm});  // before commit(): confirm() may run inside it
    if (unconfirmed.empty() || now - unconfirmed.back().second >= std::chrono::milliseconds(100))
      unconfirmed.emplace_back(p, now);
    sink.commit(self, p, wall_us());
  }

  // One page of rows: one transaction for the sink. Returns the number of rows.
  int deliver(Table& t, const PGresult* res, TimePoint now) {
    int rows = PQntuples(res);
    std::size_t ncol = t.info->columns.size();
    bool begun = false;
    auto begin = [&] {
      if (!begun) sink.begin(self);
      begun = true;
    };
    for (bool* flag : {&t.widen_once, &t.deletes_seen}) {
      if (!*flag) continue;
      *flag = false;
      if (flag == &t.widen_once) ++counters.start_widenings;
      begin();
      sink.widen_table(self, t.cfg.schema, t.cfg.table, Unknown::Polled);
    }
    std::string key;
    std::vector<std::string> cursor(t.cur_idx.size());
    for (int r = 0; r < rows; ++r) {
      ++counters.rows;
      new_img.values.resize(ncol);
      for (std::size_t c = 0; c < ncol; ++c) {
        int ci = static_cast<int>(c);
        new_img.values[c] =
            PQgetisnull(res, r, ci)
                ? Datum::null()
                : Datum::value(std::string_view(PQgetvalue(res, r, ci),
                                                static_cast<std::size_t>(PQgetlength(res, r, ci))));
      }
      for (std::size_t i = 0; i < t.cur_idx.size(); ++i)
        cursor[i] = PQgetvalue(res, r, t.cur_idx[i]);
      const char* id =
          t.id_idx >= 0 && !PQgetisnull(res, r, t.id_idx) ? PQgetvalue(res, r, t.id_idx) : nullptr;
      bool beyond =
          t.plan.mode == Mode::Id
              ? t.round_cursor.empty() || poll::compare_number(cursor[0], t.round_cursor[0]) > 0
              : PQgetvalue(res, r, static_cast<int>(ncol))[0] == 't';
      // Which row, at which version: seen before with the same version means already done.
      std::string version = t.plan.mode == Mode::Id ? "" : cursor[0];
      if (t.plan.mode == Mode::Time) {
        key.clear();
        for (std::size_t i = 1; i < cursor.size(); ++i) key += (i > 1 ? "\x1f" : "") + cursor[i];
      } else {
        key = id ? id : "";
      }
      if (t.seen.check_and_add(key, version, now)) {
        ++counters.repeats;
      } else {
        bool insert = t.plan.mode == Mode::Id ||
                      (t.plan.mode == Mode::TimeId && id &&
                       (!t.threshold || poll::compare_number(id, *t.threshold) > 0));
        ChangeEvent ev;
        ev.source = SourceKind::Poll;
        ev.table = t.info.get();
        ev.new_row = &new_img;
        if (insert) {
          ev.op = Op::Insert;
          ++counters.inserts;
        } else {
          // The old row: its key as now (a key rarely changes); every other value unknown.
          ev.op = Op::Update;
          old_img.missing_why = Unknown::Polled;
          old_img.values.assign(ncol, Datum::unknown(Unknown::Polled));
          for (std::size_t c = 0; c < ncol; ++c)
            if (t.info->key[c]) old_img.values[c] = new_img.values[c];
          ev.old_row = &old_img;
          ++counters.updates;
        }
        ++st.changes;
        begin();
        sink.change(self, ev);
      }
      if (beyond) t.wm.cursor = cursor;
      if (id && (!t.wm.max_id || poll::compare_number(id, *t.wm.max_id) > 0) &&
          t.plan.mode == Mode::TimeId)
        t.wm.max_id = id;
    }
    if (rows > 0) t.page_after = cursor;
    if (begun || t.wm != t.committed) {
      begin();
      commit(t, current, now);
    }
    return rows;
  }

  void finish_table(TimePoint now) {
    Table& t = *tables[current];
    if (t.plan.mode == Mode::Id) t.history.emplace_back(now, t.wm.cursor);
    ++current;
    if (current < tables.size()) {
      begin_table(now);
      return;
    }
    ++counters.rounds;
    next = Step::None;
    next_round = std::max(round_started + opt.poll.interval, now);
    flush_unsaved(now);
  }

  // Sends what the round needs next, unless the sink is full (back-pressure) or stopping.
  void advance(TimePoint now) {
    if (phase != Phase::Streaming || in_flight != Step::None || stopped) return;
    if (next == Step::None) {
      if (now < next_round) return;
      if (recatalog) {  // new rules: look the columns up again first
        starting_next(Step::None, now);
        return;
      }
      round_started = now;
      current = 0;
      begin_table(now);
    }
    if (!sink.accepting()) return;
    Table& t = *tables[current];
    switch (next) {
      case Step::Stats:
        send_stats(t, now);
        break;
      case Step::FirstPage:
        send_page(t, true, now);
        break;
      case Step::NextPage:
        send_page(t, false, now);
        break;
      default:
        break;
    }
    next = Step::None;
  }

  void on_result(const PGresult* res, TimePoint now) {
    Step done = in_flight;
    in_flight = Step::None;
    deadline_at = kNever;
    if (done == Step::Setup || done == Step::Catalog || done == Step::Init) {
      if (done == Step::Catalog) catalog(*tables[current], res);
      if (done == Step::Init) init(*tables[current], res);
      starting_next(done, now);
      if (in_flight == Step::None) advance(now);
      return;
    }
    if (stopped) return;  // draining: read nothing more (the round is replayed on restart)
    Table& t = *tables[current];
    if (done == Step::Stats) {
      stats(t, res);
      next = Step::FirstPage;
    } else if (done == Step::FirstPage || done == Step::NextPage) {
      int rows = deliver(t, res, now);
      if (static_cast<std::size_t>(rows) >= opt.poll.page_size)
        next = Step::NextPage;
      else
        finish_table(now);
    }
    advance(now);
  }

  // --- persistence -------------------------------------------------------------------------

  void confirm(Position p) {
    confirmed = std::max(confirmed, p);
    while (!unconfirmed.empty() && unconfirmed.front().first <= p) unconfirmed.pop_front();
    while (!pending.empty() && pending.front().position <= p) {
      unsaved[pending.front().table] = std::move(pending.front().wm);
      pending.pop_front();
    }
    flush_unsaved(Clock::now());
  }

  void flush_unsaved(TimePoint now) {
    for (auto it = unsaved.begin(); it != unsaved.end();) {
      Table& t = *tables[it->first];
      try {
        poll::save(t.file, it->second);
        ++counters.state_writes;
        t.confirmed = std::move(it->second);
        it = unsaved.erase(it);
        if (unsaved.empty()) save_error.clear();
      } catch (const std::exception& e) {
        ++counters.state_errors;
        ++st.errors;
        st.last_error = save_error = e.what();
        std::uint64_t held = 0;
        if (state_log.allow(e.what(), now, held))
          spdlog::error(
              "poll: {}: saving the watermark of {}: {}; will retry (a restart would "
              "re-read from the last saved one){}",
              phase_name(), t.qualified, e.what(),
              held ? fmt::format(" ({} identical errors not logged)", held) : "");
        ++it;
      }
    }
  }

  // --- loop callbacks ------------------------------------------------------------------------

  void on_ready(short revents) {
    TimePoint now = Clock::now();
    try {
      if (phase == Phase::Connecting) {
        if (conn.continue_connect()) on_connected(now);
        return;
      }
      if (phase != Phase::Starting && phase != Phase::Streaming) return;
      conn.pump(revents);
      pg::Result res;
      if (in_flight != Step::None && conn.take_result(res, step_name(in_flight, current)))
        on_result(res.get(), now);
    } catch (const std::exception& e) {
      fail(e.what(), now);
    }
  }

  std::string step_name(Step s, std::size_t i) const {
    std::string table = i < tables.size() ? tables[i]->qualified : "?";
    switch (s) {
      case Step::Setup:
        return "setting up the session";
      case Step::Catalog:
        return "reading the catalog of " + table;
      case Step::Init:
        return "reading the current maximum of " + table;
      case Step::Stats:
        return "counting the rows of " + table;
      case Step::FirstPage:
      case Step::NextPage:
        return "reading changed rows of " + table;
      case Step::None:
        break;
    }
    return "a query";
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
        case Phase::Streaming:
          if (in_flight != Step::None && now >= deadline_at)
            throw ConnectionError(fmt::format("no answer from {} within {:.0f}s while {}",
                                              conn.server(), seconds(opt.query_timeout) + 5,
                                              step_name(in_flight, current)));
          if (!unsaved.empty()) flush_unsaved(now);
          advance(now);
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
        if (in_flight != Step::None) return deadline_at;
        if (stopped) return kNever;
        if (next != Step::None) return sink.accepting() ? TimePoint{} : kNever;
        return next_round;
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
      case Phase::Streaming:
        return conn.events(in_flight != Step::None);
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
    std::vector<std::string> parts;
    for (const auto& t : tables)
      if (t->have_state) parts.push_back(t->qualified + " " + describe(*t, t->confirmed));
    s.position = join(parts, ", ");
    s.lag_seconds = unconfirmed.empty() ? 0 : seconds(Clock::now() - unconfirmed.front().second);
    // A watermark that cannot be saved (disk full, permissions) is retried every confirm; until
    // it is, a restart would repeat everything since the last saved one: say so, not healthy.
    if (!unsaved.empty() && !save_error.empty())
      s.degraded = "cannot save the watermark (" + save_error + ")";
    return s;
  }
};

PollSource::PollSource(PollOptions options, const rules::RuleSet& rules, ChangeSink& sink)
    : impl_(std::make_unique<Impl>(*this, std::move(options), rules, sink)) {}

PollSource::~PollSource() {
  close();
}

void PollSource::rules_changed(const rules::RuleSet& rules) {
  impl_->set_rules(rules);
}
const PollCounters& PollSource::counters() const {
  return impl_->counters;
}
const std::string& PollSource::name() const {
  return impl_->name;
}
void PollSource::confirm(Position position) {
  impl_->confirm(position);
}
SourceStatus PollSource::status() const {
  return impl_->status();
}
std::string PollSource::format_position(Position position) const {
  return "#" + std::to_string(position);
}

void PollSource::stop_reading() {
  impl_->stopped = true;
  if (impl_->phase != Impl::Phase::Streaming) {
    impl_->conn.close();
    impl_->phase = Impl::Phase::Stopped;
  }
}

void PollSource::close() noexcept {
  impl_->conn.close();
  impl_->phase = Impl::Phase::Stopped;
  impl_->stopped = true;
}

int PollSource::fd() const {
  return impl_->conn.fd();
}
short PollSource::events() const {
  return impl_->events();
}
void PollSource::on_ready(short revents) {
  impl_->on_ready(revents);
}
TimePoint PollSource::deadline() const {
  return impl_->deadline();
}
void PollSource::on_timer(TimePoint now) {
  impl_->on_timer(now);
}

}  // namespace pgbust
