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

#include "async_core.hpp"
#include "pgbust/sources/poll_plan.hpp"
#include "pgbust/sources/poll_state.hpp"
#include "pgbust/sources/poll_table.hpp"

namespace pgbust {

namespace {

using detail::seconds;
using detail::wall_us;

using poll::Mode;

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

struct PollSource::Impl final : detail::AsyncCore {
  enum class Step { None, Setup, Catalog, Init, Stats, FirstPage, NextPage };

  using Table = poll::Table;

  // A PGresult as the table's page of rows.
  struct ResultRows final : poll::Rows {
    const PGresult* res;
    explicit ResultRows(const PGresult* r) : res(r) {}
    int count() const override { return PQntuples(res); }
    bool null(int r, int c) const override { return PQgetisnull(res, r, c) != 0; }
    std::string_view text(int r, int c) const override {
      return {PQgetvalue(res, r, c), static_cast<std::size_t>(PQgetlength(res, r, c))};
    }
  };

  // A page's events into the sink, opening the transaction at the first.
  struct SinkOutput final : poll::PageOutput {
    Impl& impl;
    bool begun = false;
    explicit SinkOutput(Impl& i) : impl(i) {}
    void begin() {
      if (!begun) impl.sink_.begin(impl.self_);
      begun = true;
    }
    void widen(const TableInfo& t) override {
      begin();
      impl.sink_.widen_table(impl.self_, t.schema, t.name, Unknown::Polled);
    }
    void change(const ChangeEvent& ev) override {
      begin();
      ++impl.changes;
      impl.sink_.change(impl.self_, ev);
    }
  };

  struct Snapshot {
    Position position;
    std::size_t table;
    poll::Watermark wm;
  };

  PollOptions opt;
  LogLimiter state_log;
  std::vector<std::unique_ptr<Table>> tables;
  bool recatalog = false;
  TimePoint deadline_at = kNever, next_round = kNever, round_started{};
  Step in_flight = Step::None, next = Step::None;
  std::size_t current = 0;  // the table being worked on
  Position seq = 0, confirmed = 0;
  std::deque<Snapshot> pending;                            // committed, not yet confirmed
  std::map<std::size_t, poll::Watermark> unsaved;          // confirmed, writing failed
  std::string save_error;                                  // why the last write failed
  std::deque<std::pair<Position, TimePoint>> unconfirmed;  // sampled, for the lag
  PollCounters counters;
  std::uint64_t changes = 0, transactions = 0;

  Impl(PollSource& s, PollOptions o, const rules::RuleSet& rules, ChangeSink& k)
      : AsyncCore(s, k, detail::async_options("poll", "pgbust-poll", o)),
        opt(std::move(o)),
        state_log(opt.log_interval) {
    if (opt.poll.tables.empty()) throw Error("sources.poll: no tables configured");
    // One poller per set of tables across hosts with the same config (the others standby).
    std::vector<std::string> polled;
    for (const auto& c : opt.poll.tables) polled.push_back(c.schema + "." + c.table);
    base_.lock = "pgbust:poll:" + join(polled, ",");
    for (const auto& c : opt.poll.tables) {
      auto t = std::make_unique<Table>(c, opt.seen_limit, c.overlap + 2 * opt.poll.interval);
      t->sql_name = pg::quote_ident(c.schema) + "." + pg::quote_ident(c.table);
      t->file =
          std::filesystem::path(opt.poll.state_dir) / poll::state_file_name(c.schema, c.table);
      t->loaded = poll::load(t->file);
      tables.push_back(std::move(t));
    }
    set_rules(rules);
  }

  void rules_changed(const rules::RuleSet& rules) override { set_rules(rules); }

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

  void send(Step step, const std::string& sql,
            const std::vector<std::optional<std::string>>& params, TimePoint now) {
    conn_.send(sql, params);
    in_flight = step;
    // The server's statement_timeout fires first and says so; this catches a dead link.
    deadline_at = now + opt.query_timeout + std::chrono::seconds(5);
  }

  void on_connected(TimePoint now) override {
    session_.log(spdlog::level::info, "connected to {}; reading the catalog of {} table(s)",
                 server(), tables.size());
    send(Step::Setup,
         fmt::format("SET statement_timeout = {}; SET default_transaction_read_only = on",
                     opt.query_timeout.count()),
         {}, now);
  }

  void on_lost() noexcept override {
    in_flight = next = Step::None;
    deadline_at = kNever;
  }

  // --- starting: catalog and initial maxima ----------------------------------------------

  void catalog(Table& t, const PGresult* res) {
    std::vector<poll::CatalogColumn> cols;
    for (int r = 0; r < PQntuples(res); ++r)
      cols.push_back({PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), PQgetvalue(res, r, 2)[0],
                      PQgetvalue(res, r, 3)[0] == 't'});
    t.apply_plan(poll::make_plan(t.cfg, cols, t.needed));
    for (const auto& c : t.plan.missing)
      if (t.warned.insert(c).second)
        session_.log(spdlog::level::warn,
                     "table {} has no column \"{}\", which the rules read: they widen for it",
                     t.qualified, c);
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
        session_.log(spdlog::level::info, "{}: resuming from {} ({})", t.qualified, t.file.string(),
                     t.describe(w));
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
      session_.log(spdlog::level::warn,
                   "{}: no saved watermark ({}): first start; polling starts "
                   "from the current maximum and every rule of the table widens once (what "
                   "changed before is unknown)",
                   t.qualified, t.file.string());
    else
      session_.log(spdlog::level::err,
                   "{}: unusable watermark state: {}; polling starts from the "
                   "current maximum and every rule of the table widens once",
                   t.qualified, problem);
    if (!problem.empty()) session_.count_error(problem);
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
    session_.log(spdlog::level::info, "{}: starting at {}", t.qualified, t.describe(w));
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
    if (session_.phase() == Phase::Starting) {
      session_.up(now);
      session_.log(spdlog::level::info, "polling {} table(s) every {:.1f}s", tables.size(),
                   seconds(opt.poll.interval));
    }
  }

  // --- rounds ------------------------------------------------------------------------------

  void begin_table(TimePoint now) {
    Table& t = *tables[current];
    t.begin_round(now);
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
      session_.log(spdlog::level::info,
                   "{}: {} rows, expected at least {} ({} before, {} new): rows "
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
    ++transactions;
    t.committed = t.wm;
    pending.push_back({p, index, t.wm});  // before commit(): confirm() may run inside it
    if (unconfirmed.empty() || now - unconfirmed.back().second >= std::chrono::milliseconds(100))
      unconfirmed.emplace_back(p, now);
    sink_.commit(self_, p, wall_us());
  }

  // One page of rows: one transaction for the sink. Returns the number of rows.
  int deliver(Table& t, const PGresult* res, TimePoint now) {
    SinkOutput out(*this);
    bool changed = false;
    int rows = t.deliver(ResultRows(res), now, out, counters, changed);
    if (changed) {
      out.begin();
      commit(t, current, now);
    }
    return rows;
  }

  void finish_table(TimePoint now) {
    Table& t = *tables[current];
    t.end_round(now);
    ++current;
    if (current < tables.size()) {
      begin_table(now);
      return;
    }
    ++counters.rounds;
    session_.progress(now);  // a whole round read: the queries work
    next = Step::None;
    next_round = std::max(round_started + opt.poll.interval, now);
    flush_unsaved(now);
  }

  // Sends what the round needs next, unless the sink is full (back-pressure) or stopping.
  void advance(TimePoint now) {
    if (session_.phase() != Phase::Up || in_flight != Step::None || stopped()) return;
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
    if (!sink_.accepting()) return;
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
    if (stopped()) return;  // draining: read nothing more (the round is replayed on restart)
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

  void confirm(Position p) override {
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
        save_error = e.what();
        session_.count_error(e.what());
        std::uint64_t held = 0;
        if (state_log.allow(e.what(), now, held))
          session_.log(spdlog::level::err,
                       "saving the watermark of {}: {}; will retry (a restart would "
                       "re-read from the last saved one){}",
                       t.qualified, e.what(),
                       held ? fmt::format(" ({} identical errors not logged)", held) : "");
        ++it;
      }
    }
  }

  // --- loop callbacks ------------------------------------------------------------------------

  void on_input(short, TimePoint now) override {
    pg::Result res;
    if (in_flight != Step::None && conn_.take_result(res, step_name(in_flight, current)))
      on_result(res.get(), now);
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

  void on_tick(TimePoint now) override {
    if (in_flight != Step::None && now >= deadline_at)
      throw ConnectionError(fmt::format("no answer from {} within {:.0f}s while {}", server(),
                                        seconds(opt.query_timeout) + 5,
                                        step_name(in_flight, current)));
    if (!unsaved.empty()) flush_unsaved(now);
    advance(now);
  }

  TimePoint next_tick() const override {
    if (in_flight != Step::None || session_.phase() == Phase::Starting) return deadline_at;
    if (stopped()) return kNever;
    if (next != Step::None) return sink_.accepting() ? TimePoint{} : kNever;
    return next_round;
  }

  bool want_input() const override { return in_flight != Step::None; }

  void fill_status(SourceStatus& s) const override {
    s.changes = changes;
    s.transactions = transactions;
    std::vector<std::string> parts;
    for (const auto& t : tables)
      if (t->have_state) parts.push_back(t->qualified + " " + t->describe(t->confirmed));
    s.position = join(parts, ", ");
    s.lag_seconds = unconfirmed.empty() ? 0 : seconds(Clock::now() - unconfirmed.front().second);
    // A watermark that cannot be saved (disk full, permissions) is retried every confirm; until
    // it is, a restart would repeat everything since the last saved one: say so, not healthy.
    if (!unsaved.empty() && !save_error.empty())
      s.degraded = "cannot save the watermark (" + save_error + ")";
  }
};

PollSource::PollSource(PollOptions options, const rules::RuleSet& rules, ChangeSink& sink) {
  impl_ = std::make_unique<Impl>(*this, std::move(options), rules, sink);
}

PollSource::~PollSource() = default;

const PollCounters& PollSource::counters() const {
  return static_cast<const Impl&>(*impl_).counters;
}

}  // namespace pgbust
