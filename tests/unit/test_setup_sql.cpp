// `pgbust setup` SQL generation: golden texts for the NOTIFY triggers and the publication,
// and the decisions behind them (keys, replica identity, missing tables and columns, names).
#include <doctest/doctest.h>

#include "pgbust/cli/setup_sql.hpp"

using namespace pgbust;
using namespace pgbust::cli::setup_sql;
using V = std::vector<std::string>;

namespace {

Catalog catalog() {
  Catalog c;
  c["public.t"] = {true, {"id", "g"}, {"id"}, 'd', {}};
  c["public.u"] = {true, {"a", "b", "c"}, {}, 'i', {"b"}};
  c["public.full"] = {true, {"k", "v"}, {"k"}, 'f', {}};
  c["public.nokey"] = {true, {"x", "y"}, {}, 'd', {}};
  c["public.nothing"] = {true, {"x"}, {"x"}, 'n', {}};
  c["public.gone"] = {false, {}, {}, 'd', {}};
  return c;
}

bool has(const std::vector<std::string>& list, const std::string& part) {
  for (const auto& s : list)
    if (s.find(part) != std::string::npos) return true;
  return false;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("golden: the NOTIFY trigger of one table") {
  auto c = catalog();
  auto out =
      notify_sql({{"public", "t", {"g"}}}, &c, NotifyOptions{"it's", "", true, false, "pgbust"});
  CHECK(out.errors.empty());
  CHECK(out.warnings.empty());
  CHECK(out.sql == R"SQL(-- pgbust setup --notify: NOTIFY triggers for the tables the rules read.
-- Each row change sends, at commit, a JSON payload {"schema", "table", "op", "new",
-- "old"} with the columns the rules read and the key, as text, on channel 'it''s', signed (sig1:<key id>:<HMAC>:<JSON>).
-- Safe to run again: functions are replaced and triggers created afresh; the key is kept.
-- Run with: psql -v ON_ERROR_STOP=1 -f FILE

BEGIN;

-- Signed payloads. PostgreSQL has no permission on NOTIFY channels: any role that can
-- connect can send any payload. Each payload is signed with HMAC-SHA256 and a key in
-- pgbust.notify_key, which only the owner of these objects (and pgbust's role, granted
-- SELECT below) can read; pgbust rejects payloads without a valid signature.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA IF NOT EXISTS pgbust;
REVOKE ALL ON SCHEMA pgbust FROM PUBLIC;
CREATE TABLE IF NOT EXISTS pgbust.notify_key (
  id text PRIMARY KEY,
  secret bytea NOT NULL,
  created timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp());
REVOKE ALL ON pgbust.notify_key FROM PUBLIC;
DO $pgbust$
DECLARE
  crypto name := (SELECT n.nspname FROM pg_catalog.pg_extension e
                  JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
                  WHERE e.extname = 'pgcrypto');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pgbust.notify_key) THEN
    EXECUTE pg_catalog.format('INSERT INTO pgbust.notify_key (id, secret) VALUES (
      pg_catalog.encode(%1$I.gen_random_bytes(4), ''hex''), %1$I.gen_random_bytes(32))',
      crypto);
  END IF;
  -- sig1:<key id>:<HMAC-SHA256 of the payload, hex>:<payload>, with the newest key.
  EXECUTE pg_catalog.format($sign$
    CREATE OR REPLACE FUNCTION pgbust.notify_sign(payload text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS $body$
      SELECT 'sig1:' || k.id || ':' || pg_catalog.encode(%I.hmac(
               pg_catalog.convert_to(payload, 'UTF8'), k.secret, 'sha256'), 'hex') || ':' ||
             payload
      FROM pgbust.notify_key k ORDER BY k.created DESC, k.id LIMIT 1
    $body$$sign$, crypto);
END
$pgbust$;
REVOKE ALL ON FUNCTION pgbust.notify_sign(text) FROM PUBLIC;
-- pgbust reads the key (at each connection, and after a rotation) as this role.
GRANT USAGE ON SCHEMA pgbust TO "pgbust";
GRANT SELECT ON pgbust.notify_key TO "pgbust";

-- public.t: sends id, g (key: id) on channel 'it''s'.
CREATE OR REPLACE FUNCTION "public"."pgbust_notify_t"() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
SET DateStyle = 'ISO'
SET IntervalStyle = 'postgres'
SET extra_float_digits = '1'
SET bytea_output = 'hex'
AS $pgbust$
DECLARE
  new_row jsonb;
  old_row jsonb;
  payload text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    payload := pgbust.notify_sign(pg_catalog.jsonb_build_object(
      'schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'op', pg_catalog.lower(TG_OP))::text);
    PERFORM pg_catalog.pg_notify('it''s', payload);
    RETURN NULL;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    new_row := pg_catalog.jsonb_build_object('id', NEW."id"::text, 'g', NEW."g"::text);
  END IF;
  IF TG_OP <> 'INSERT' THEN
    old_row := pg_catalog.jsonb_build_object('id', OLD."id"::text, 'g', OLD."g"::text);
  END IF;
  payload := pgbust.notify_sign(pg_catalog.jsonb_build_object(
    'schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'op', pg_catalog.lower(TG_OP),
    'new', new_row, 'old', old_row)::text);
  IF pg_catalog.octet_length(payload) > 7999 THEN
    -- Too large for NOTIFY (under 8000 bytes): the key columns only; pgbust widens
    -- the rules for the other columns.
    IF TG_OP <> 'DELETE' THEN
      new_row := pg_catalog.jsonb_build_object('id', NEW."id"::text);
    END IF;
    IF TG_OP <> 'INSERT' THEN
      old_row := pg_catalog.jsonb_build_object('id', OLD."id"::text);
    END IF;
    payload := pgbust.notify_sign(pg_catalog.jsonb_build_object(
      'schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'op', pg_catalog.lower(TG_OP),
      'new', new_row, 'old', old_row, 'oversized', true)::text);
    IF pg_catalog.octet_length(payload) > 7999 THEN
      -- Even the key is too large: no row values; pgbust widens every rule of the table.
      payload := pgbust.notify_sign(pg_catalog.jsonb_build_object(
        'schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'op', pg_catalog.lower(TG_OP),
        'oversized', true)::text);
    END IF;
  END IF;
  PERFORM pg_catalog.pg_notify('it''s', payload);
  RETURN NULL;
END
$pgbust$;
REVOKE ALL ON FUNCTION "public"."pgbust_notify_t"() FROM PUBLIC;
DROP TRIGGER IF EXISTS pgbust_notify ON "public"."t";
CREATE TRIGGER pgbust_notify AFTER INSERT OR UPDATE OR DELETE ON "public"."t"
  FOR EACH ROW EXECUTE FUNCTION "public"."pgbust_notify_t"();
DROP TRIGGER IF EXISTS pgbust_notify_truncate ON "public"."t";
CREATE TRIGGER pgbust_notify_truncate AFTER TRUNCATE ON "public"."t"
  FOR EACH STATEMENT EXECUTE FUNCTION "public"."pgbust_notify_t"();

COMMIT;
)SQL");
}

TEST_CASE("NOTIFY triggers for sources.notify.verify: false: unsigned, no key, no definer") {
  auto c = catalog();
  auto out = notify_sql({{"public", "t", {"g"}}}, &c, NotifyOptions{"pgbust", "", false});
  CHECK(out.errors.empty());
  for (const char* absent :
       {"pgcrypto", "notify_key", "notify_sign", "SECURITY DEFINER", "REVOKE", "GRANT", "sig1"}) {
    CAPTURE(absent);
    CHECK_FALSE(contains(out.sql, absent));
  }
  CHECK(contains(out.sql,
                 "  payload := pg_catalog.jsonb_build_object('schema', TG_TABLE_SCHEMA, "
                 "'table', TG_TABLE_NAME,\n      'op', pg_catalog.lower(TG_OP))::text;\n"
                 "    PERFORM pg_catalog.pg_notify('pgbust', payload);\n"));
}

TEST_CASE("NOTIFY signing: --rotate-key adds a key and keeps one; no role known: a comment") {
  auto c = catalog();
  NotifyOptions o;
  o.rotate_key = true;
  auto out = notify_sql({{"public", "t", {"g"}}}, &c, o);
  CHECK(contains(out.sql,
                 "  DELETE FROM pgbust.notify_key WHERE id NOT IN (\n"
                 "    SELECT id FROM pgbust.notify_key ORDER BY created DESC, id LIMIT 1);\n"));
  CHECK_FALSE(contains(out.sql, "IF NOT EXISTS (SELECT 1 FROM pgbust.notify_key)"));
  CHECK(contains(out.sql, "\n-- GRANT SELECT ON pgbust.notify_key TO <role>;\n"));
  CHECK_FALSE(contains(out.sql, "\nGRANT"));
}

TEST_CASE("golden: the publication with column lists, and the slot") {
  auto c = catalog();
  auto out = logical_sql({{"public", "t", {"g"}}, {"public", "u", {"c"}}}, &c,
                         LogicalOptions{"pgbust", "pgbust", 150000, "x"});
  CHECK(out.errors.empty());
  CHECK(out.warnings.empty());
  CHECK(out.sql ==
        R"SQL(-- pgbust setup: publication 'pgbust' and slot 'pgbust' for the logical source.
-- x
-- Safe to run again: the publication is created, or set to these tables.
-- Run with: psql -v ON_ERROR_STOP=1 -f FILE

BEGIN;

-- Column lists (PostgreSQL 15+): the walsender decodes and sends only these columns,
-- less WAL decoding work and network than whole rows. A column list must include the
-- replica identity columns, or UPDATE and DELETE on the table fail.
--   public.t: id, g (replica identity: id)
--   public.u: b, c (replica identity: b)

DO $pgbust$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'pgbust') THEN
    CREATE PUBLICATION "pgbust" FOR TABLE
      "public"."t" ("id", "g"),
      "public"."u" ("b", "c");
  ELSE
    ALTER PUBLICATION "pgbust" SET TABLE
      "public"."t" ("id", "g"),
      "public"."u" ("b", "c");
  END IF;
END
$pgbust$;

COMMIT;

-- The slot, outside a transaction (a slot cannot be created in one that has written).
-- It keeps WAL until pgbust confirms it: drop it with pg_drop_replication_slot('pgbust')
-- if pgbust is retired. (The daemon also creates it when sources.logical.create_slot is on.)
SELECT pg_catalog.pg_create_logical_replication_slot('pgbust', 'pgoutput')
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = 'pgbust');
)SQL");
  // --apply runs the two parts separately: the slot outside the transaction.
  CHECK(contains(out.sql, out.transactional));
  CHECK(contains(out.sql, out.outside));
  CHECK(contains(out.outside, "pg_create_logical_replication_slot"));
  CHECK_FALSE(contains(out.transactional, "pg_create_logical_replication_slot"));
}

TEST_CASE("NOTIFY triggers: what is sent, and what is left out with a reason") {
  auto c = catalog();
  auto out = notify_sql({{"public", "t", {"g", "missing_col"}},
                         {"public", "nokey", {"y"}},
                         {"public", "gone", {"x"}}},
                        &c, NotifyOptions{"pgbust", "Generated from rules.yaml."});
  CHECK(out.sql.rfind("-- pgbust setup --notify", 0) == 0);
  CHECK(contains(out.sql, "-- Generated from rules.yaml.\n"));
  CHECK(contains(out.sql, "\nBEGIN;\n"));
  CHECK(out.sql.size() >= 8);
  CHECK(out.sql.substr(out.sql.size() - 8) == "COMMIT;\n");
  // The missing column is not referenced (plpgsql would fail at the first write), but reported.
  CHECK_FALSE(contains(out.sql, "missing_col"));
  CHECK(has(out.warnings, "table public.t has no column \"missing_col\""));
  // No key: an oversized payload carries no rows.
  CHECK(has(out.warnings, "table public.nokey has no primary key"));
  CHECK(contains(out.sql, "no key columns known: no row values"));
  // A table that does not exist is an error and gets no trigger.
  CHECK(out.errors == V{"table public.gone does not exist: no trigger for it"});
  CHECK_FALSE(contains(out.sql, "\"gone\""));
  // Idempotent: functions replaced, triggers dropped before being created.
  CHECK(contains(out.sql, "CREATE OR REPLACE FUNCTION \"public\".\"pgbust_notify_nokey\"()"));
  CHECK(contains(out.sql,
                 "DROP TRIGGER IF EXISTS pgbust_notify ON \"public\".\"nokey\";\n"
                 "CREATE TRIGGER pgbust_notify AFTER INSERT OR UPDATE OR DELETE ON"));
  CHECK(contains(out.sql, "AFTER TRUNCATE ON \"public\".\"nokey\"\n  FOR EACH STATEMENT"));
}

TEST_CASE("NOTIFY triggers offline: the rules' columns as they are, no key") {
  auto out = notify_sql({{"public", "t", {"g", "h"}}}, nullptr, NotifyOptions{});
  CHECK(out.errors.empty());
  CHECK(contains(out.sql, "-- Offline: columns not checked"));
  CHECK(contains(out.sql, "'g', NEW.\"g\"::text, 'h', NEW.\"h\"::text"));
  CHECK(contains(out.sql, "pg_notify('pgbust', payload)"));
}

TEST_CASE("NOTIFY triggers: more than 50 columns are built in chunks (100-argument limit)") {
  TableNeeds wide{"public", "wide", {}};
  TableCatalog cat{true, {}, {"c0"}, 'd', {}};
  for (int i = 0; i < 120; ++i) {
    wide.columns.push_back("c" + std::to_string(i));
    cat.columns.push_back("c" + std::to_string(i));
  }
  Catalog c{{"public.wide", cat}};
  auto out = notify_sql({wide}, &c, NotifyOptions{});
  auto pos = out.sql.find("new_row := ");
  REQUIRE(pos != std::string::npos);
  auto end = out.sql.find(";\n", pos);
  std::string expr = out.sql.substr(pos, end - pos);
  std::size_t calls = 0;
  for (auto p = expr.find("jsonb_build_object("); p != std::string::npos;
       p = expr.find("jsonb_build_object(", p + 1))
    ++calls;
  CHECK(calls == 3);  // 50 + 50 + 20 pairs
  CHECK(contains(expr, " ||\n"));
  CHECK(contains(expr, "'c119', NEW.\"c119\"::text"));
}

TEST_CASE("trigger function names fit in 63 bytes and stay distinct") {
  CHECK(notify_function_name("orders") == "pgbust_notify_orders");
  std::string a(60, 'a'), b = std::string(59, 'a') + "b";
  std::string na = notify_function_name(a), nb = notify_function_name(b);
  CHECK(na.size() == 63);
  CHECK(nb.size() == 63);
  CHECK(na != nb);
  CHECK(na == notify_function_name(a));  // stable
  CHECK(notify_function_name(std::string(49, 'x')).size() == 63);
  CHECK(notify_function_name(std::string(49, 'x')) == "pgbust_notify_" + std::string(49, 'x'));
}

TEST_CASE("publication: replica identity decides the column list") {
  auto c = catalog();
  auto out = logical_sql({{"public", "full", {"v"}},
                          {"public", "nokey", {"y"}},
                          {"public", "nothing", {"x"}},
                          {"public", "t", {"g", "missing_col"}},
                          {"public", "gone", {"x"}}},
                         &c, LogicalOptions{});
  // FULL: the whole row is the identity, so no list.
  CHECK(contains(out.sql, "      \"public\".\"full\",\n"));
  // No identity (DEFAULT without a key, NOTHING): REPLICA IDENTITY FULL first, else UPDATEs fail.
  CHECK(contains(out.sql, "ALTER TABLE \"public\".\"nokey\" REPLICA IDENTITY FULL;\n"));
  CHECK(contains(out.sql, "ALTER TABLE \"public\".\"nothing\" REPLICA IDENTITY FULL;\n"));
  CHECK(out.sql.find("REPLICA IDENTITY FULL;") < out.sql.find("CREATE PUBLICATION"));
  CHECK(has(out.warnings, "table public.nokey has no replica identity"));
  // A missing column is left out of the list (CREATE PUBLICATION would fail on it).
  CHECK(contains(out.sql, "\"public\".\"t\" (\"id\", \"g\")"));
  CHECK(has(out.warnings, "table public.t has no column \"missing_col\""));
  CHECK(out.errors == V{"table public.gone does not exist: left out of the publication"});
  CHECK_FALSE(contains(out.sql, "\"gone\""));
  CHECK(contains(out.sql, "CREATE PUBLICATION \"pgbust\" FOR TABLE"));
  CHECK(contains(out.sql, "ALTER PUBLICATION \"pgbust\" SET TABLE"));
}

TEST_CASE("publication before PostgreSQL 15 or offline: no column lists, and it says why") {
  auto c = catalog();
  auto old = logical_sql({{"public", "t", {"g"}}}, &c, LogicalOptions{"p", "s", 140005, ""});
  CHECK(contains(old.sql, "older than PostgreSQL 15"));
  CHECK(contains(old.sql, "      \"public\".\"t\";\n"));
  auto offline =
      logical_sql({{"public", "t", {"g"}}}, nullptr, LogicalOptions{"p", "s", 150000, ""});
  CHECK(contains(offline.sql, "-- Offline: no column lists"));
  CHECK(contains(offline.sql, "CREATE PUBLICATION \"p\" FOR TABLE\n      \"public\".\"t\";"));
  CHECK(contains(offline.sql, "pg_create_logical_replication_slot('s', 'pgoutput')"));
  auto none = logical_sql({}, &c, LogicalOptions{});
  CHECK(contains(none.sql, "-- No table to publish."));
}

TEST_CASE("the tables and columns come from the rules") {
  auto loaded = rules::RuleSet::parse(R"(
version: 1
rules:
  - name: a
    table: orders
    delete: ["order:${id}", "customer:${customer_id}"]
  - name: b
    table: shop.items
    when: "new.price > 10"
    bump: ["rev:${sku}"]
)",
                                      "rules.yaml");
  REQUIRE(loaded.errors.empty());
  auto t = needs(*loaded.rules);
  REQUIRE(t.size() == 2);
  CHECK(t[0].qualified() == "public.orders");
  CHECK(t[0].columns == V{"customer_id", "id"});
  CHECK(t[1].qualified() == "shop.items");
  CHECK(t[1].columns == V{"price", "sku"});
}

TEST_CASE("publication: old values the identity lacks are a warning, or with identity_full FULL") {
  auto c = catalog();
  TableNeeds t{"public", "t", {"g"}};
  t.old_values = {"g", "id"};  // id is the key: only g is lacking
  auto warned = logical_sql({t}, &c, LogicalOptions{});
  CHECK(has(warned.warnings,
            "table public.t: the rules read old values of g, which its replica identity does not "
            "put in the WAL, so they widen on UPDATE and DELETE; --identity-full sets REPLICA "
            "IDENTITY FULL"));
  CHECK(contains(warned.sql, "\"public\".\"t\" (\"id\", \"g\")"));
  CHECK_FALSE(contains(warned.sql, "REPLICA IDENTITY FULL;"));

  LogicalOptions o;
  o.identity_full = true;
  auto fixed = logical_sql({t}, &c, o);
  CHECK(fixed.warnings.empty());
  // In the publication's transaction, before it: no moment with a list that misses a column.
  CHECK(contains(fixed.transactional, "ALTER TABLE \"public\".\"t\" REPLICA IDENTITY FULL;\n"));
  CHECK(fixed.transactional.find("REPLICA IDENTITY FULL;") <
        fixed.transactional.find("CREATE PUBLICATION"));
  CHECK(contains(fixed.sql, "      \"public\".\"t\";\n"));  // every column: no list
  CHECK(contains(fixed.sql, "--   public.t: all columns (REPLICA IDENTITY FULL"));
}

// Regression: a partitioned rule table was published without publish_via_partition_root, so
// its changes arrived under each partition's name and no rule of it ever fired.
TEST_CASE("publication: a partitioned rule table publishes via its root") {
  auto c = catalog();
  c["public.events"] = {true, {"id", "day", "grp"}, {"id", "day"}, 'd', {}, 'p'};
  auto out =
      logical_sql({{"public", "events", {"grp"}}, {"public", "t", {"g"}}}, &c, LogicalOptions{});
  CHECK(contains(out.sql,
                 "\"public\".\"t\" (\"id\", \"g\")\n      WITH "
                 "(publish_via_partition_root = true);"));
  CHECK(contains(out.sql,
                 "    ALTER PUBLICATION \"pgbust\" SET (publish_via_partition_root = "
                 "true);\n  END IF;"));
  CHECK(contains(out.sql, "-- Partitioned tables: publish_via_partition_root"));
  auto plain = logical_sql({{"public", "t", {"g"}}}, &c, LogicalOptions{});
  CHECK_FALSE(contains(plain.sql, "publish_via_partition_root"));
}
