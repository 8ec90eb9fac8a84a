// One polled table: its plan, round bookkeeping and what a page of rows means.
#include "pgbust/sources/poll_table.hpp"

#include "pgbust/core/quote.hpp"
#include "pgbust/core/text.hpp"
#include "pgbust/sources/poll.hpp"

namespace pgbust::poll {

Table::Table(const config::PollTable& c, std::size_t seen_limit, Clock::duration seen_for)
    : cfg(c), seen(seen_limit, seen_for) {
  qualified = c.schema + "." + c.table;
  info->schema = c.schema;
  info->name = c.table;
}

void Table::apply_plan(Plan p) {
  plan = std::move(p);
  if (plan.columns != info->columns || plan.key != info->key) {
    info->columns = plan.columns;
    info->key = plan.key;
    ++info->generation;
  }
  cur_idx.clear();
  for (const auto& c : plan.cursor) cur_idx.push_back(info->column_index(c));
  id_idx = plan.id.empty() ? -1 : info->column_index(plan.id);
}

void Table::begin_round(TimePoint now) {
  round_cursor = wm.cursor;
  threshold = wm.max_id;
  page_after.clear();
  if (plan.mode != Mode::Id) return;
  TimePoint limit = now - cfg.overlap;
  while (history.size() >= 2 && history[1].first <= limit) history.pop_front();
  if (!history.empty() && history.front().first <= limit) wm.floor = history.front().second;
  if (wm.floor.empty()) wm.floor = wm.cursor;
}

void Table::end_round(TimePoint now) {
  if (plan.mode == Mode::Id) history.emplace_back(now, wm.cursor);
}

std::string Table::describe(const Watermark& w) const {
  if (w.cursor.empty()) return "no rows yet";
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < w.cursor.size() && i < plan.cursor.size(); ++i)
    parts.push_back(plan.cursor[i] + "=" + quote_if_unsafe(w.cursor[i]));
  return join(parts, " ");
}

// The change event of row `r` (not seen before at this version): an insert, or an update
// whose old row is its key as now (a key rarely changes) with every other value unknown.
void Table::row_event(const char* id, PageOutput& out, PollCounters& counters) {
  const std::size_t ncol = info->columns.size();
  bool insert = plan.mode == Mode::Id || (plan.mode == Mode::TimeId && id &&
                                          (!threshold || compare_number(id, *threshold) > 0));
  ChangeEvent ev;
  ev.source = SourceKind::Poll;
  ev.table = info.get();
  ev.new_row = &new_img_;
  if (insert) {
    ev.op = Op::Insert;
    ++counters.inserts;
  } else {
    ev.op = Op::Update;
    old_img_.missing_why = Unknown::Polled;
    old_img_.values.assign(ncol, Datum::unknown(Unknown::Polled));
    for (std::size_t c = 0; c < ncol; ++c)
      if (info->key[c]) old_img_.values[c] = new_img_.values[c];
    ev.old_row = &old_img_;
    ++counters.updates;
  }
  out.change(ev);
}

int Table::deliver(const Rows& rows, TimePoint now, PageOutput& out, PollCounters& counters,
                   bool& changed) {
  const int n = rows.count();
  const std::size_t ncol = info->columns.size();
  changed = false;
  for (bool* flag : {&widen_once, &deletes_seen}) {
    if (!*flag) continue;
    *flag = false;
    if (flag == &widen_once) ++counters.start_widenings;
    out.widen(*info);
    changed = true;
  }
  std::string key;
  std::vector<std::string> cursor(cur_idx.size());
  for (int r = 0; r < n; ++r) {
    ++counters.rows;
    new_img_.values.resize(ncol);
    for (std::size_t c = 0; c < ncol; ++c) {
      int ci = static_cast<int>(c);
      new_img_.values[c] = rows.null(r, ci) ? Datum::null() : Datum::value(rows.text(r, ci));
    }
    for (std::size_t i = 0; i < cur_idx.size(); ++i) cursor[i] = rows.text(r, cur_idx[i]);
    std::string id_text;
    const char* id = nullptr;
    if (id_idx >= 0 && !rows.null(r, id_idx)) {
      id_text = rows.text(r, id_idx);
      id = id_text.c_str();
    }
    bool beyond = plan.mode == Mode::Id
                      ? round_cursor.empty() || compare_number(cursor[0], round_cursor[0]) > 0
                      : rows.text(r, static_cast<int>(ncol)).starts_with('t');
    // Which row, at which version: seen before with the same version means already done.
    std::string version = plan.mode == Mode::Id ? "" : cursor[0];
    if (plan.mode == Mode::Time) {
      key.clear();
      for (std::size_t i = 1; i < cursor.size(); ++i) key += (i > 1 ? "\x1f" : "") + cursor[i];
    } else {
      key = id ? id : "";
    }
    if (seen.check_and_add(key, version, now)) {
      ++counters.repeats;
    } else {
      row_event(id, out, counters);
      changed = true;
    }
    if (beyond) wm.cursor = cursor;
    if (id && (!wm.max_id || compare_number(id, *wm.max_id) > 0) && plan.mode == Mode::TimeId)
      wm.max_id = id;
  }
  if (n > 0) page_after = cursor;
  if (wm != committed) changed = true;
  return n;
}

}  // namespace pgbust::poll
