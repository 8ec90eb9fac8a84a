// A polled table's pages without a server: inserts and updates, overlap repeats, watermarks.
#include <doctest/doctest.h>

#include "pgbust/sources/poll.hpp"
#include "pgbust/sources/poll_table.hpp"

using namespace pgbust;
using namespace std::chrono_literals;

namespace {

// Rows as text; std::nullopt is NULL.
struct VecRows final : poll::Rows {
  std::vector<std::vector<std::optional<std::string>>> rows;
  int count() const override { return static_cast<int>(rows.size()); }
  bool null(int r, int c) const override { return !rows[r][c]; }
  std::string_view text(int r, int c) const override {
    return rows[r][c] ? std::string_view(*rows[r][c]) : std::string_view();
  }
};

// "insert v:1|v:a" / "update old=1|? new=1|b" / "widen public.t".
struct Recorder final : poll::PageOutput {
  std::vector<std::string> events;
  static std::string show(const RowImage& img) {
    std::string out;
    for (const auto& d : img.values)
      out += (out.empty() ? "" : "|") + (d.state == Datum::State::Value  ? std::string(d.text)
                                         : d.state == Datum::State::Null ? std::string("null")
                                                                         : std::string("?"));
    return out;
  }
  void widen(const TableInfo& t) override { events.push_back("widen " + t.qualified()); }
  void change(const ChangeEvent& e) override {
    std::string s = std::string(to_string(e.op));
    if (e.old_row) s += " old=" + show(*e.old_row);
    events.push_back(s + " new=" + show(*e.new_row));
  }
};

poll::Table table(poll::Mode mode, std::vector<std::string> cursor, std::string id) {
  config::PollTable cfg;
  cfg.table = "t";
  cfg.overlap = 10s;
  poll::Table t(cfg, 1000, 30s);
  poll::Plan p;
  p.mode = mode;
  p.cursor = std::move(cursor);
  p.id = std::move(id);
  p.columns = {"id", "name", "updated_at"};
  p.key = {true, false, false};
  t.apply_plan(p);
  return t;
}

}  // namespace

TEST_CASE("poll table, id mode: new ids are inserts, the overlap's re-reads are repeats") {
  poll::Table t = table(poll::Mode::Id, {"id"}, "id");
  PollCounters counters;
  TimePoint now{};
  t.begin_round(now);
  VecRows page;
  page.rows = {{"9", "a", "x"}, {"10", "b", "x"}};
  Recorder out;
  bool changed = false;
  CHECK(t.deliver(page, now, out, counters, changed) == 2);
  CHECK(changed);
  CHECK(out.events == std::vector<std::string>{"insert new=9|a|x", "insert new=10|b|x"});
  CHECK(t.wm.cursor == std::vector<std::string>{"10"});  // numeric order, not text order
  CHECK(t.page_after == std::vector<std::string>{"10"});
  t.committed = t.wm;
  t.end_round(now);

  // The next round reads from the floor again: 10 is a repeat, 11 is new.
  now += 1s;
  t.begin_round(now);
  page.rows = {{"10", "b", "x"}, {"11", "c", "x"}};
  Recorder again;
  CHECK(t.deliver(page, now, again, counters, changed) == 2);
  CHECK(again.events == std::vector<std::string>{"insert new=11|c|x"});
  CHECK(counters.repeats == 1);
  CHECK(counters.inserts == 3);
  CHECK(t.wm.cursor == std::vector<std::string>{"11"});

  // Nothing new and the watermark unmoved: no transaction is due.
  t.committed = t.wm;
  page.rows = {{"11", "c", "x"}};
  Recorder none;
  t.deliver(page, now, none, counters, changed);
  CHECK(none.events.empty());
  CHECK_FALSE(changed);
}

TEST_CASE("poll table, time+id mode: ids above the threshold are inserts, others updates") {
  // Select list: id, name, updated_at, then the "beyond the round's cursor" flag.
  poll::Table t = table(poll::Mode::TimeId, {"updated_at", "id"}, "id");
  t.widen_once = true;  // first start: every rule of the table widens once
  t.wm.max_id = "5";
  PollCounters counters;
  TimePoint now{};
  t.begin_round(now);
  VecRows page;
  page.rows = {{"4", "old", "2024-01-01", "t"},
               {"6", "new", "2024-01-02", "t"},
               {"7", std::nullopt, "2024-01-01", "f"}};
  Recorder out;
  bool changed = false;
  CHECK(t.deliver(page, now, out, counters, changed) == 3);
  CHECK(out.events == std::vector<std::string>{
                          "widen public.t",
                          "update old=4|?|? new=4|old|2024-01-01",  // the key only
                          "insert new=6|new|2024-01-02",
                          "insert new=7|null|2024-01-01",
                      });
  CHECK(counters.start_widenings == 1);
  CHECK(counters.updates == 1);
  CHECK(counters.inserts == 2);
  CHECK(t.wm.max_id == "7");
  // Only rows beyond the round's cursor move it.
  CHECK(t.wm.cursor == std::vector<std::string>{"2024-01-02", "6"});
  CHECK_FALSE(t.widen_once);

  // The same row at a new version is an update again; at the same version a repeat.
  page.rows = {{"4", "old", "2024-01-01", "f"}, {"4", "newer", "2024-01-03", "t"}};
  Recorder again;
  t.deliver(page, now, again, counters, changed);
  CHECK(again.events == std::vector<std::string>{"update old=4|?|? new=4|newer|2024-01-03"});
  CHECK(t.describe(t.wm) == "updated_at=2024-01-03 id=4");
}
