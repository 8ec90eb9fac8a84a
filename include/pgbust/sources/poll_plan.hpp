// What the poll source reads for one table, decided from the catalog: the watermark mode,
// the cursor columns and their types, the columns to fetch, and the SQL of each query. Pure.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "pgbust/core/config.hpp"
#include "pgbust/pg/catalog.hpp"

namespace pgbust::poll {

enum class Mode { Id, Time, TimeId };  // [id], [updated_at], [updated_at, id]

// The table's columns as the catalog describes them (pgcatalog::kColumnsSql).
using CatalogColumn = pgcatalog::Column;

struct Plan {
  std::string qualified;  // schema.table
  std::string sql_name;   // "schema"."table"
  Mode mode = Mode::Id;
  // The order rows are read in: [id], or [updated_at, key columns...], or [updated_at, id].
  std::vector<std::string> cursor, cursor_types;
  std::string id;  // the id column (Id and TimeId), else empty
  // The columns fetched (as text), in table order: what rules need, key and watermark.
  std::vector<std::string> columns;
  std::vector<bool> key;
  std::vector<std::string> missing;  // columns the rules read that the table lacks
};

// Throws Error naming the table, the column and the config line when the table or a
// watermark/key column does not exist or the watermark columns have unusable types.
Plan make_plan(const config::PollTable& table, const std::vector<CatalogColumn>& catalog,
               const std::vector<std::string>& needed);

struct Query {
  std::string sql;
  std::vector<std::optional<std::string>> params;
};

// One row: the highest id (TimeId; else NULL), then the cursor of the latest row (NULLs when
// the table has no row).
std::string init_sql(const Plan& plan);
// count(*), the rows with an id above `count_max` (0 without an id), max(id)::text (or NULL).
Query stats_query(const Plan& plan, const std::optional<std::string>& count_max);

// A page of rows past `after` (the last row of the previous page), or on the first page of a
// round: Id: ids above `floor`; Time: updated_at >= start - overlap (rows past `start` when
// the overlap is 0); no bound when the table had no rows. For the Time modes a last column
// (beyond the fetched ones) says whether the row is past `start`.
Query page_query(const Plan& plan, bool first, const std::vector<std::string>& start,
                 const std::vector<std::string>& floor, const std::vector<std::string>& after,
                 std::chrono::milliseconds overlap, std::size_t page_size);

}  // namespace pgbust::poll
