// The poll source's per-table plan: watermark modes from catalog types, the columns fetched,
// errors naming the config line, and the exact SQL of each query.
#include <doctest/doctest.h>

#include "pgbust/sources/poll_plan.hpp"

using namespace pgbust;
using namespace std::chrono_literals;
using V = std::vector<std::string>;

namespace {

config::PollTable table(V watermark, V key = {}) {
  config::PollTable t;
  t.schema = "public";
  t.table = "tasks";
  t.watermark = std::move(watermark);
  t.key = std::move(key);
  t.line = 12;
  return t;
}

// id bigint PK, updated_at timestamptz, status text, "Group" int, note text, created date
const std::vector<poll::CatalogColumn> kTasks = {
    {"id", "bigint", 'N', true},    {"updated_at", "timestamp with time zone", 'D', false},
    {"status", "text", 'S', false}, {"Group", "integer", 'N', false},
    {"note", "text", 'S', false},   {"created", "date", 'D', false},
};

}  // namespace

TEST_CASE("the watermark mode comes from the columns' types") {
  auto id = poll::make_plan(table({"id"}), kTasks, {"status"});
  CHECK(id.mode == poll::Mode::Id);
  CHECK(id.cursor == V{"id"});
  CHECK(id.cursor_types == V{"bigint"});
  CHECK(id.id == "id");
  CHECK(id.columns == V{"id", "status"});
  CHECK(id.key == std::vector<bool>{true, false});
  CHECK(id.qualified == "public.tasks");
  CHECK(id.sql_name == "\"public\".\"tasks\"");

  auto time = poll::make_plan(table({"updated_at"}), kTasks, {"Group"});
  CHECK(time.mode == poll::Mode::Time);
  CHECK(time.cursor == V{"updated_at", "id"});  // the primary key orders equal times
  CHECK(time.cursor_types == V{"timestamp with time zone", "bigint"});
  CHECK(time.id.empty());
  CHECK(time.columns == V{"id", "updated_at", "Group"});  // table order

  auto both = poll::make_plan(table({"updated_at", "id"}), kTasks, {"status", "missing"});
  CHECK(both.mode == poll::Mode::TimeId);
  CHECK(both.cursor == V{"updated_at", "id"});
  CHECK(both.id == "id");
  CHECK(both.missing == V{"missing"});

  auto dated = poll::make_plan(table({"created"}, {"note"}), kTasks, {});
  CHECK(dated.cursor == V{"created", "note"});  // `key:` overrides the primary key
  CHECK(dated.columns == V{"note", "created"});
  CHECK(dated.key == std::vector<bool>{true, false});
}

TEST_CASE("plans that cannot work are errors naming the table, column and config line") {
  struct Case {
    config::PollTable cfg;
    std::vector<poll::CatalogColumn> catalog;
    const char* error;
  };
  std::vector<poll::CatalogColumn> no_pk = {
      {"updated_at", "timestamp without time zone", 'D', false}, {"v", "text", 'S', false}};
  const Case cases[] = {
      {table({"id"}), {}, "table public.tasks does not exist (sources.poll.tables, line 12)"},
      {table({"nope"}), kTasks,
       "table public.tasks has no column \"nope\" (watermark in sources.poll.tables, line 12)"},
      {table({"id"}, {"k"}), kTasks, "has no column \"k\" (key in"},
      {table({"status"}), kTasks, "watermark [status] must be [id]"},
      {table({"id", "updated_at"}), kTasks, "id is bigint, updated_at is timestamp with time zone"},
      {table({"updated_at", "status"}), kTasks, "status is text"},
      {table({"updated_at"}), no_pk, "watermark [updated_at] needs a primary key or `key:`"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.error);
    CHECK_THROWS_WITH_AS(poll::make_plan(c.cfg, c.catalog, {}), doctest::Contains(c.error), Error);
  }
}

TEST_CASE("SQL of the id watermark") {
  auto p = poll::make_plan(table({"id"}), kTasks, {"status"});
  CHECK(poll::init_sql(p) ==
        "SELECT NULL::text, c.* FROM (SELECT 1) m LEFT JOIN LATERAL (SELECT \"id\"::text FROM "
        "\"public\".\"tasks\" WHERE \"id\" IS NOT NULL ORDER BY \"public\".\"tasks\".\"id\" DESC "
        "LIMIT 1) c ON true");
  auto stats = poll::stats_query(p, std::string("40"));
  CHECK(stats.sql ==
        "SELECT count(*), count(*) FILTER (WHERE \"id\" > $1::bigint), max(\"id\")::text "
        "FROM \"public\".\"tasks\"");
  CHECK(stats.params == std::vector<std::optional<std::string>>{"40"});
  CHECK(poll::stats_query(p, std::nullopt).params ==
        std::vector<std::optional<std::string>>{std::nullopt});

  auto first = poll::page_query(p, true, {"45"}, {"40"}, {}, 30s, 500);
  CHECK(first.sql ==
        "SELECT \"id\"::text, \"status\"::text FROM \"public\".\"tasks\" WHERE \"id\" IS NOT "
        "NULL AND \"id\" > ($1::bigint) ORDER BY \"public\".\"tasks\".\"id\" LIMIT 500");
  CHECK(first.params == std::vector<std::optional<std::string>>{"40"});  // from the floor
  auto next = poll::page_query(p, false, {"45"}, {"40"}, {"540"}, 30s, 500);
  CHECK(next.params == std::vector<std::optional<std::string>>{"540"});
  auto empty = poll::page_query(p, true, {}, {}, {}, 30s, 500);
  CHECK(empty.sql ==
        "SELECT \"id\"::text, \"status\"::text FROM \"public\".\"tasks\" WHERE \"id\" IS NOT "
        "NULL ORDER BY \"public\".\"tasks\".\"id\" LIMIT 500");
  CHECK(empty.params.empty());
}

TEST_CASE("SQL of the [updated_at, id] watermark: overlap window, paging, the beyond column") {
  auto p = poll::make_plan(table({"updated_at", "id"}), kTasks, {"Group"});
  CHECK(poll::init_sql(p) ==
        "SELECT (SELECT max(\"id\")::text FROM \"public\".\"tasks\"), c.* FROM (SELECT 1) m LEFT "
        "JOIN "
        "LATERAL (SELECT \"updated_at\"::text, \"id\"::text FROM \"public\".\"tasks\" WHERE "
        "\"updated_at\" IS NOT NULL AND \"id\" IS NOT NULL ORDER BY "
        "\"public\".\"tasks\".\"updated_at\" DESC, \"public\".\"tasks\".\"id\" DESC "
        "LIMIT 1) c ON true");
  V start = {"2024-05-01 10:00:00+00", "7"};
  auto first = poll::page_query(p, true, start, {}, {}, 30s, 100);
  CHECK(first.sql ==
        "SELECT \"id\"::text, \"updated_at\"::text, \"Group\"::text, (\"updated_at\", \"id\") > "
        "($1::timestamp with time zone, $2::bigint) FROM \"public\".\"tasks\" WHERE \"updated_at\" "
        "IS "
        "NOT NULL AND \"id\" IS NOT NULL AND \"updated_at\" >= $1::timestamp with time zone - "
        "$3::interval ORDER BY "
        "\"public\".\"tasks\".\"updated_at\", \"public\".\"tasks\".\"id\" LIMIT 100");
  CHECK(first.params == std::vector<std::optional<std::string>>{"2024-05-01 10:00:00+00", "7",
                                                                "30000 milliseconds"});
  auto exact = poll::page_query(p, true, start, {}, {}, 0ms, 100);
  CHECK(exact.sql.find(
            "AND (\"updated_at\", \"id\") > ($1::timestamp with time zone, $2::bigint) ORDER") !=
        std::string::npos);
  CHECK(exact.params.size() == 2);
  auto next = poll::page_query(p, false, start, {}, {"2024-05-01 10:00:05+00", "9"}, 30s, 100);
  CHECK(next.sql.find(
            "AND (\"updated_at\", \"id\") > ($3::timestamp with time zone, $4::bigint) ORDER") !=
        std::string::npos);
  CHECK(next.params.size() == 4);
  auto fresh = poll::page_query(p, true, {}, {}, {}, 30s, 100);
  CHECK(
      fresh.sql ==
      "SELECT \"id\"::text, \"updated_at\"::text, \"Group\"::text, true FROM \"public\".\"tasks\" "
      "WHERE \"updated_at\" IS NOT NULL AND \"id\" IS NOT NULL ORDER BY "
      "\"public\".\"tasks\".\"updated_at\", \"public\".\"tasks\".\"id\" LIMIT 100");
  CHECK(poll::stats_query(p, std::nullopt).sql.find("$1::bigint") != std::string::npos);
}

TEST_CASE("SQL of the [updated_at] watermark counts without an id") {
  auto p = poll::make_plan(table({"updated_at"}), kTasks, {});
  auto stats = poll::stats_query(p, std::nullopt);
  CHECK(stats.sql == "SELECT count(*), 0, NULL FROM \"public\".\"tasks\"");
  CHECK(stats.params.empty());
  CHECK(poll::init_sql(p).find("SELECT NULL::text, c.*") == 0);
}
