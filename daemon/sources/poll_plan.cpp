// The poll source's per-table plan and SQL: watermark mode from the catalog, typed casts.
#include "pgbust/sources/poll_plan.hpp"
#include "pgbust/core/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "pgbust/pg/async.hpp"

namespace pgbust::poll {

namespace {

std::string list(const std::vector<std::string>& items) {
  return "[" + join(items, ", ") + "]";
}

// A cursor column for ORDER BY, qualified with its table. The queries select every column as
// `"col"::text` under its own name, and PostgreSQL resolves a bare ORDER BY name to the output
// column first: pages would be sorted as text ("10" < "9") while the keyset condition compares
// typed values, and rows between the two orders would be skipped for good.
std::string typed(const Plan& p, const std::string& column) {
  return p.sql_name + "." + pg::quote_ident(column);
}

}  // namespace

Plan make_plan(const config::PollTable& cfg, const std::vector<CatalogColumn>& catalog,
               const std::vector<std::string>& needed) {
  Plan p;
  p.qualified = cfg.schema + "." + cfg.table;
  p.sql_name = pg::quote_ident(cfg.schema) + "." + pg::quote_ident(cfg.table);
  std::string where = cfg.line > 0 ? fmt::format("sources.poll.tables, line {}", cfg.line)
                                   : std::string("sources.poll.tables");
  if (catalog.empty()) throw Error(fmt::format("table {} does not exist ({})", p.qualified, where));
  std::map<std::string, const CatalogColumn*> by_name;
  for (const auto& c : catalog) by_name[c.name] = &c;
  auto require = [&](const std::string& c, const char* what) -> const CatalogColumn& {
    auto it = by_name.find(c);
    if (it == by_name.end())
      throw Error(
          fmt::format("table {} has no column \"{}\" ({} in {})", p.qualified, c, what, where));
    return *it->second;
  };
  std::vector<std::string> key = cfg.key;
  if (key.empty())
    for (const auto& c : catalog)
      if (c.primary_key) key.push_back(c.name);
  for (const auto& k : key) require(k, "key");
  const auto& w = cfg.watermark;
  if (w.empty())
    throw Error(fmt::format("table {}: no watermark columns ({})", p.qualified, where));
  const CatalogColumn& first = require(w[0], "watermark");
  if (w.size() == 1 && first.category == 'N') {
    p.mode = Mode::Id;
    p.id = w[0];
    p.cursor = {w[0]};
  } else if (w.size() == 1 && first.category == 'D') {
    if (key.empty())
      throw Error(
          fmt::format("table {}: watermark [{}] needs a primary key or `key:` to order "
                      "rows with equal times ({})",
                      p.qualified, w[0], where));
    p.mode = Mode::Time;
    p.cursor = {w[0]};
    for (const auto& k : key)
      if (k != w[0]) p.cursor.push_back(k);
  } else if (w.size() == 2 && first.category == 'D' && require(w[1], "watermark").category == 'N') {
    p.mode = Mode::TimeId;
    p.id = w[1];
    p.cursor = {w[0], w[1]};
  } else {
    std::vector<std::string> types;
    for (const auto& c : w) types.push_back(c + " is " + require(c, "watermark").type);
    throw Error(
        fmt::format("table {}: watermark {} must be [id] (an integer or numeric column), "
                    "[updated_at] (a date/time column) or [updated_at, id]; {} ({})",
                    p.qualified, list(w), join(types, ", "), where));
  }
  for (const auto& c : p.cursor) p.cursor_types.push_back(by_name[c]->type);
  std::set<std::string> want(key.begin(), key.end());
  want.insert(p.cursor.begin(), p.cursor.end());
  for (const auto& c : needed) {
    if (by_name.count(c))
      want.insert(c);
    else
      p.missing.push_back(c);
  }
  for (const auto& c : catalog)
    if (want.count(c.name)) {
      p.columns.push_back(c.name);
      p.key.push_back(std::find(key.begin(), key.end(), c.name) != key.end());
    }
  return p;
}

std::string init_sql(const Plan& p) {
  std::vector<std::string> sel, order, conds;
  for (const auto& c : p.cursor) {
    std::string q = pg::quote_ident(c);
    sel.push_back(q + "::text");
    order.push_back(typed(p, c) + " DESC");
    conds.push_back(q + " IS NOT NULL");
  }
  std::string max_id = p.mode == Mode::TimeId ? "(SELECT max(" + pg::quote_ident(p.id) +
                                                    ")::text FROM " + p.sql_name + ")"
                                              : std::string("NULL::text");
  return "SELECT " + max_id + ", c.* FROM (SELECT 1) m LEFT JOIN LATERAL (SELECT " +
         join(sel, ", ") + " FROM " + p.sql_name + " WHERE " + join(conds, " AND ") + " ORDER BY " +
         join(order, ", ") + " LIMIT 1) c ON true";
}

Query stats_query(const Plan& p, const std::optional<std::string>& count_max) {
  if (p.id.empty()) return {"SELECT count(*), 0, NULL FROM " + p.sql_name, {}};
  std::string id = pg::quote_ident(p.id);
  std::string type = p.cursor_types[p.mode == Mode::Id ? 0 : 1];
  return {"SELECT count(*), count(*) FILTER (WHERE " + id + " > $1::" + type + "), max(" + id +
              ")::text FROM " + p.sql_name,
          {count_max}};
}

Query page_query(const Plan& p, bool first, const std::vector<std::string>& start,
                 const std::vector<std::string>& floor, const std::vector<std::string>& after,
                 std::chrono::milliseconds overlap, std::size_t page_size) {
  Query q;
  std::string select;
  for (std::size_t i = 0; i < p.columns.size(); ++i)
    select += (i ? ", " : "") + pg::quote_ident(p.columns[i]) + "::text";
  std::vector<std::string> cols, conds, sort;
  for (const auto& c : p.cursor) {
    cols.push_back(pg::quote_ident(c));
    conds.push_back(cols.back() + " IS NOT NULL");  // a NULL could not be paged past
    sort.push_back(typed(p, c));
  }
  std::string order = join(cols, ", ");
  auto placeholders = [&](const std::vector<std::string>& values) {
    std::vector<std::string> ph;
    for (std::size_t i = 0; i < values.size() && i < p.cursor_types.size(); ++i) {
      q.params.emplace_back(values[i]);
      ph.push_back("$" + std::to_string(q.params.size()) + "::" + p.cursor_types[i]);
    }
    return "(" + join(ph, ", ") + ")";
  };
  std::string beyond;
  if (p.mode == Mode::Id) {
    const auto& bound = first ? floor : after;
    if (!bound.empty()) conds.push_back(order + " > " + placeholders(bound));
  } else {
    // Whether the row is past the round's starting cursor, compared with the columns' types:
    // the overlap window re-reads rows before it.
    std::string from = start.empty() ? "" : placeholders(start);
    beyond = ", " + (from.empty() ? std::string("true") : "(" + order + ") > " + from);
    if (!first) {
      conds.push_back("(" + order + ") > " + placeholders(after));
    } else if (!from.empty() && overlap.count() > 0) {
      q.params.emplace_back(std::to_string(overlap.count()) + " milliseconds");
      conds.push_back(cols[0] + " >= $1::" + p.cursor_types[0] + " - $" +
                      std::to_string(q.params.size()) + "::interval");
    } else if (!from.empty()) {
      conds.push_back("(" + order + ") > " + from);
    }
  }
  q.sql = "SELECT " + select + beyond + " FROM " + p.sql_name + " WHERE " + join(conds, " AND ") +
          " ORDER BY " + join(sort, ", ") + " LIMIT " + std::to_string(page_size);
  return q;
}

}  // namespace pgbust::poll
