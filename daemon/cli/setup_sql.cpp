// SQL generation for `pgbust setup`: NOTIFY trigger functions and triggers, the publication
// with column lists, and the replication slot.
#include "pgbust/cli/setup_sql.hpp"
#include "pgbust/core/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>

#include "pgbust/pg/async.hpp"
#include "pgbust/pg/connect_params.hpp"

namespace pgbust::cli::setup_sql {

namespace {

using pg::quote_ident;
using pg::quote_literal;

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string sql_name(const TableNeeds& t) {
  return quote_ident(t.schema) + "." + quote_ident(t.table);
}

// jsonb_build_object takes at most 100 arguments: 50 pairs per call, joined with ||. One
// pair per line (at `indent`) when a single line would be long.
std::string build_object(const std::vector<std::string>& columns, const char* row,
                         const std::string& indent) {
  if (columns.empty()) return "'{}'::jsonb";
  std::vector<std::string> calls;
  for (std::size_t i = 0; i < columns.size(); i += 50) {
    std::vector<std::string> pairs;
    std::size_t width = 0;
    for (std::size_t j = i; j < std::min(columns.size(), i + 50); ++j) {
      pairs.push_back(quote_literal(columns[j]) + ", " + row + "." + quote_ident(columns[j]) +
                      "::text");
      width += pairs.back().size() + 2;
    }
    calls.push_back(width + indent.size() < 64
                        ? "pg_catalog.jsonb_build_object(" + join(pairs, ", ") + ")"
                        : "pg_catalog.jsonb_build_object(\n" + indent + "  " +
                              join(pairs, ",\n" + indent + "  ") + ")");
  }
  return join(calls, " ||\n" + indent);
}

// A dollar-quote tag that does not occur in `body`.
std::string dollar_tag(const std::string& body) {
  std::string tag = "$pgbust$";
  for (int i = 1; body.find(tag) != std::string::npos; ++i)
    tag = "$pgbust" + std::to_string(i) + "$";
  return tag;
}

// `payload := jsonb_build_object('schema', ..., 'op', ...<extra>)::text;` at an indent,
// through pgbust.notify_sign() when signing.
std::string assign_payload(const std::string& indent, const std::string& extra, bool sign) {
  if (!sign)
    return indent +
           "payload := pg_catalog.jsonb_build_object('schema', TG_TABLE_SCHEMA, 'table', "
           "TG_TABLE_NAME,\n" +
           indent + "  'op', pg_catalog.lower(TG_OP)" + extra + ")::text;\n";
  std::string out = indent + "payload := pgbust.notify_sign(pg_catalog.jsonb_build_object(\n" +
                    indent + "  'schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'op', " +
                    "pg_catalog.lower(TG_OP)";
  if (!extra.empty()) out += ",\n" + indent + "  " + extra.substr(2);  // extra starts ", "
  return out + ")::text);\n";
}

// The signing key and pgbust.notify_sign(). pgcrypto may live in any schema (IF NOT EXISTS
// leaves an existing one where it is): its functions are named with that schema, read from
// the catalog, so the SECURITY DEFINER function resolves nothing through a search_path.
std::string signing_sql(const NotifyOptions& o) {
  std::string s;
  s += "\n-- Signed payloads. PostgreSQL has no permission on NOTIFY channels: any role that can\n"
       "-- connect can send any payload. Each payload is signed with HMAC-SHA256 and a key in\n"
       "-- pgbust.notify_key, which only the owner of these objects (and pgbust's role, granted\n"
       "-- SELECT below) can read; pgbust rejects payloads without a valid signature.\n"
       "CREATE EXTENSION IF NOT EXISTS pgcrypto;\n"
       "CREATE SCHEMA IF NOT EXISTS pgbust;\n"
       "REVOKE ALL ON SCHEMA pgbust FROM PUBLIC;\n"
       "CREATE TABLE IF NOT EXISTS pgbust.notify_key (\n"
       "  id text PRIMARY KEY,\n"
       "  secret bytea NOT NULL,\n"
       "  created timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp());\n"
       "REVOKE ALL ON pgbust.notify_key FROM PUBLIC;\n";
  std::string body =
      "\nDECLARE\n"
      "  crypto name := (SELECT n.nspname FROM pg_catalog.pg_extension e\n"
      "                  JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace\n"
      "                  WHERE e.extname = 'pgcrypto');\n"
      "BEGIN\n";
  if (o.rotate_key)
    body +=
        "  -- --rotate-key: a new key signs from now on; the previous one stays (payloads already\n"
        "  -- sent with it still verify), older ones go.\n"
        "  DELETE FROM pgbust.notify_key WHERE id NOT IN (\n"
        "    SELECT id FROM pgbust.notify_key ORDER BY created DESC, id LIMIT 1);\n"
        "  EXECUTE pg_catalog.format('INSERT INTO pgbust.notify_key (id, secret) VALUES (\n"
        "    pg_catalog.encode(%1$I.gen_random_bytes(4), ''hex''), %1$I.gen_random_bytes(32))',\n"
        "    crypto);\n";
  else
    body +=
        "  IF NOT EXISTS (SELECT 1 FROM pgbust.notify_key) THEN\n"
        "    EXECUTE pg_catalog.format('INSERT INTO pgbust.notify_key (id, secret) VALUES (\n"
        "      pg_catalog.encode(%1$I.gen_random_bytes(4), ''hex''), %1$I.gen_random_bytes(32))',\n"
        "      crypto);\n"
        "  END IF;\n";
  body +=
      "  -- sig1:<key id>:<HMAC-SHA256 of the payload, hex>:<payload>, with the newest key.\n"
      "  EXECUTE pg_catalog.format($sign$\n"
      "    CREATE OR REPLACE FUNCTION pgbust.notify_sign(payload text) RETURNS text\n"
      "    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp\n"
      "    AS $body$\n"
      "      SELECT 'sig1:' || k.id || ':' || pg_catalog.encode(%I.hmac(\n"
      "               pg_catalog.convert_to(payload, 'UTF8'), k.secret, 'sha256'), 'hex') || ':' "
      "||\n"
      "             payload\n"
      "      FROM pgbust.notify_key k ORDER BY k.created DESC, k.id LIMIT 1\n"
      "    $body$$sign$, crypto);\n"
      "END\n";
  std::string tag = dollar_tag(body);
  s += "DO " + tag + body + tag + ";\n";
  s += "REVOKE ALL ON FUNCTION pgbust.notify_sign(text) FROM PUBLIC;\n";
  if (!o.reader_role.empty())
    s += "-- pgbust reads the key (at each connection, and after a rotation) as this role.\n"
         "GRANT USAGE ON SCHEMA pgbust TO " +
         quote_ident(o.reader_role) + ";\nGRANT SELECT ON pgbust.notify_key TO " +
         quote_ident(o.reader_role) + ";\n";
  else
    s += "-- pgbust reads the key as the role it connects as (not known here: --grant-to ROLE):\n"
         "-- GRANT USAGE ON SCHEMA pgbust TO <role>;\n"
         "-- GRANT SELECT ON pgbust.notify_key TO <role>;\n";
  return s;
}

// The payload renders values as text in the writer's session: pin the settings that text
// depends on, as every pgbust connection does, so a writer with another TimeZone or DateStyle
// produces the keys the logical and poll sources would.
std::string render_settings_clause() {
  std::string out;
  for (const auto& [name, value] : pg::kRenderSettings)
    out += std::string("SET ") + name + " = " + quote_literal(value) + "\n";
  return out;
}

// The whole CREATE FUNCTION for one table.
std::string notify_function(const TableNeeds& t, const std::vector<std::string>& columns,
                            const std::vector<std::string>& key, const std::string& channel,
                            bool sign) {
  std::string ch = quote_literal(channel);
  std::string body;
  body += "DECLARE\n  new_row jsonb;\n  old_row jsonb;\n  payload text;\nBEGIN\n";
  body += "  IF TG_OP = 'TRUNCATE' THEN\n";
  body += assign_payload("    ", "", sign);
  body += "    PERFORM pg_catalog.pg_notify(" + ch + ", payload);\n    RETURN NULL;\n  END IF;\n";
  auto images = [&](const std::vector<std::string>& cols, const char* indent) {
    std::string s;
    std::string inner = std::string(indent) + "  ";
    s += std::string(indent) + "IF TG_OP <> 'DELETE' THEN\n" + inner +
         "new_row := " + build_object(cols, "NEW", inner) + ";\n" + indent + "END IF;\n";
    s += std::string(indent) + "IF TG_OP <> 'INSERT' THEN\n" + inner +
         "old_row := " + build_object(cols, "OLD", inner) + ";\n" + indent + "END IF;\n";
    return s;
  };
  body += images(columns, "  ");
  body += assign_payload("  ", ", 'new', new_row, 'old', old_row", sign);
  body += "  IF pg_catalog.octet_length(payload) > 7999 THEN\n";
  if (!key.empty()) {
    body +=
        "    -- Too large for NOTIFY (under 8000 bytes): the key columns only; pgbust widens\n"
        "    -- the rules for the other columns.\n";
    body += images(key, "    ");
    body += assign_payload("    ", ", 'new', new_row, 'old', old_row, 'oversized', true", sign);
    body += "    IF pg_catalog.octet_length(payload) > 7999 THEN\n";
    body +=
        "      -- Even the key is too large: no row values; pgbust widens every rule of the "
        "table.\n";
    body += assign_payload("      ", ", 'oversized', true", sign);
    body += "    END IF;\n";
  } else {
    body +=
        "    -- Too large for NOTIFY and no key columns known: no row values; pgbust widens\n"
        "    -- every rule of the table.\n";
    body += assign_payload("    ", ", 'oversized', true", sign);
  }
  body += "  END IF;\n";
  body += "  PERFORM pg_catalog.pg_notify(" + ch + ", payload);\n  RETURN NULL;\nEND\n";
  std::string tag = dollar_tag(body);
  std::string fn = quote_ident(t.schema) + "." + quote_ident(notify_function_name(t.table));
  // Signing: SECURITY DEFINER (as the owner, who may run pgbust.notify_sign()) with a pinned
  // search_path; closed to PUBLIC so nobody attaches it to a table of their own (a trigger
  // fires whatever the writer's privileges on the function).
  return "CREATE OR REPLACE FUNCTION " + fn + "() RETURNS trigger\nLANGUAGE plpgsql\n" +
         (sign ? "SECURITY DEFINER\nSET search_path = pg_catalog, pg_temp\n" : "") +
         render_settings_clause() + "AS " + tag + "\n" + body + tag + ";\n" +
         (sign ? "REVOKE ALL ON FUNCTION " + fn + "() FROM PUBLIC;\n" : "");
}

std::string header(const std::string& title, const std::string& origin) {
  std::string out = "-- " + title + "\n";
  if (!origin.empty()) out += "-- " + origin + "\n";
  return out;
}

}  // namespace

std::vector<TableNeeds> needs(const rules::RuleSet& rules) {
  std::vector<TableNeeds> out;
  for (const std::string& q : rules.tables()) {
    auto dot = q.find('.');
    TableNeeds t{q.substr(0, dot), q.substr(dot + 1), {}};
    t.columns = rules.columns_needed(t.schema, t.table);
    for (const auto& n : rules.old_values_needed(t.schema, t.table))
      if (!contains(t.old_values, n.column)) t.old_values.push_back(n.column);
    out.push_back(std::move(t));
  }
  return out;
}

std::string notify_function_name(const std::string& table) {
  std::string name = "pgbust_notify_" + table;
  if (name.size() <= 63) return name;
  std::uint32_t h = 2166136261u;  // FNV-1a: a stable short suffix
  for (unsigned char c : table) h = (h ^ c) * 16777619u;
  return name.substr(0, 54) + fmt::format("_{:08x}", h);
}

Output notify_sql(const std::vector<TableNeeds>& tables, const Catalog* catalog,
                  const NotifyOptions& options) {
  Output out;
  std::string& s = out.transactional;
  for (const TableNeeds& t : tables) {
    std::vector<std::string> columns, key;
    std::string note;
    if (catalog != nullptr) {
      auto it = catalog->find(t.qualified());
      if (it == catalog->end() || !it->second.exists) {
        out.errors.push_back("table " + t.qualified() + " does not exist: no trigger for it");
        continue;
      }
      const TableCatalog& c = it->second;
      key = c.primary_key.empty() ? c.identity_index : c.primary_key;
      for (const auto& col : c.columns)
        if (contains(t.columns, col) || contains(key, col)) columns.push_back(col);
      for (const auto& col : t.columns)
        if (!contains(c.columns, col))
          out.warnings.push_back("table " + t.qualified() + " has no column \"" + col +
                                 "\", which the rules read: not sent; those rules widen");
      if (key.empty())
        out.warnings.push_back("table " + t.qualified() +
                               " has no primary key: a row too large "
                               "for NOTIFY sends no values and every rule of the table widens");
    } else {
      columns = t.columns;
      note =
          "-- Offline: columns not checked against the table and no primary key known, so an\n"
          "-- oversized row sends no values (every rule of the table widens).\n";
    }
    s += "\n-- " + t.qualified() + ": sends " +
         (columns.empty() ? "no columns" : join(columns, ", ")) +
         (key.empty() ? "" : " (key: " + join(key, ", ") + ")") + " on channel " +
         quote_literal(options.channel) + ".\n" + note;
    s += notify_function(t, columns, key, options.channel, options.sign);
    std::string fn = quote_ident(t.schema) + "." + quote_ident(notify_function_name(t.table));
    s += "DROP TRIGGER IF EXISTS pgbust_notify ON " + sql_name(t) + ";\n";
    s += "CREATE TRIGGER pgbust_notify AFTER INSERT OR UPDATE OR DELETE ON " + sql_name(t) +
         "\n  FOR EACH ROW EXECUTE FUNCTION " + fn + "();\n";
    s += "DROP TRIGGER IF EXISTS pgbust_notify_truncate ON " + sql_name(t) + ";\n";
    s += "CREATE TRIGGER pgbust_notify_truncate AFTER TRUNCATE ON " + sql_name(t) +
         "\n  FOR EACH STATEMENT EXECUTE FUNCTION " + fn + "();\n";
  }
  if (options.sign) s = signing_sql(options) + s;
  out.sql = header("pgbust setup --notify: NOTIFY triggers for the tables the rules read.",
                   options.origin);
  out.sql +=
      "-- Each row change sends, at commit, a JSON payload {\"schema\", \"table\", \"op\", "
      "\"new\",\n"
      "-- \"old\"} with the columns the rules read and the key, as text, on channel " +
      quote_literal(options.channel) +
      (options.sign ? ", signed (sig1:<key id>:<HMAC>:<JSON>)" : "") +
      ".\n"
      "-- Safe to run again: functions are replaced and triggers created afresh" +
      (options.sign ? "; the key is kept" : "") +
      ".\n"
      "-- Run with: psql -v ON_ERROR_STOP=1 -f FILE\n\nBEGIN;\n" +
      s + "\nCOMMIT;\n";
  return out;
}

Output logical_sql(const std::vector<TableNeeds>& tables, const Catalog* catalog,
                   const LogicalOptions& options) {
  Output out;
  bool lists = catalog != nullptr && options.server_version >= 150000;
  std::vector<std::string> entries;
  std::string notes, alters;
  bool partitioned = false;
  for (const TableNeeds& t : tables) {
    std::string entry = sql_name(t);
    if (catalog == nullptr) {
      entries.push_back(entry);
      continue;
    }
    auto it = catalog->find(t.qualified());
    if (it == catalog->end() || !it->second.exists) {
      out.errors.push_back("table " + t.qualified() +
                           " does not exist: left out of the publication");
      continue;
    }
    const TableCatalog& c = it->second;
    if (c.kind == 'p') partitioned = true;
    std::vector<std::string> identity;
    char ri = c.replica_identity;
    if (ri == 'd' && !c.primary_key.empty()) identity = c.primary_key;
    if (ri == 'i') identity = c.identity_index;
    if (ri == 'n' || (ri == 'd' && c.primary_key.empty()) || (ri == 'i' && identity.empty())) {
      // A published table without a replica identity refuses UPDATE and DELETE.
      alters += "-- " + t.qualified() +
                " has no replica identity: once published, its UPDATEs "
                "and DELETEs would fail.\nALTER TABLE " +
                sql_name(t) + " REPLICA IDENTITY FULL;\n";
      out.warnings.push_back("table " + t.qualified() +
                             " has no replica identity: the SQL sets "
                             "REPLICA IDENTITY FULL (else its UPDATEs and DELETEs would fail once "
                             "published)");
      ri = 'f';
    }
    std::vector<std::string> lacking;
    if (ri != 'f')
      for (const auto& col : t.old_values)
        if (!contains(identity, col) && contains(c.columns, col)) lacking.push_back(col);
    if (!lacking.empty() && options.identity_full) {
      alters += "-- The rules read old values of " + join(lacking, ", ") + " on " + t.qualified() +
                ", which its replica identity\n-- does not put in the WAL: every column, so "
                "nothing widens.\nALTER TABLE " +
                sql_name(t) + " REPLICA IDENTITY FULL;\n";
      ri = 'f';
    } else if (!lacking.empty()) {
      out.warnings.push_back(
          "table " + t.qualified() + ": the rules read old values of " + join(lacking, ", ") +
          ", which its replica identity does not put in the WAL, so they widen on UPDATE and "
          "DELETE; --identity-full sets REPLICA IDENTITY FULL and publishes every column, in "
          "the same transaction (run ALTER TABLE ... REPLICA IDENTITY FULL alone and, with a "
          "column list, every UPDATE and DELETE on the table fails)");
    }
    std::vector<std::string> cols;
    for (const auto& col : c.columns)
      if (contains(t.columns, col) || contains(identity, col)) cols.push_back(col);
    for (const auto& col : t.columns)
      if (!contains(c.columns, col))
        out.warnings.push_back("table " + t.qualified() + " has no column \"" + col +
                               "\", which the rules read: not published; those rules widen");
    if (lists && ri != 'f') {
      std::vector<std::string> quoted;
      for (const auto& col : cols) quoted.push_back(quote_ident(col));
      entry += " (" + join(quoted, ", ") + ")";
      notes += "--   " + t.qualified() + ": " + join(cols, ", ") +
               (identity.empty() ? "" : " (replica identity: " + join(identity, ", ") + ")") + "\n";
    } else {
      notes +=
          "--   " + t.qualified() + ": all columns" +
          (ri == 'f' ? " (REPLICA IDENTITY FULL: a column list would have to name them all)" : "") +
          "\n";
    }
    entries.push_back(entry);
  }
  std::string pub = quote_ident(options.publication);
  std::string& s = out.transactional;
  if (catalog == nullptr)
    s += "\n-- Offline: no column lists (the replica identity columns, which a column list must\n"
         "-- include, are not known without the database), so every column is published.\n";
  else if (!lists)
    s += "\n-- This server is older than PostgreSQL 15: no column lists, every column is "
         "published.\n";
  else
    s += "\n-- Column lists (PostgreSQL 15+): the walsender decodes and sends only these columns,\n"
         "-- less WAL decoding work and network than whole rows. A column list must include the\n"
         "-- replica identity columns, or UPDATE and DELETE on the table fail.\n" +
         notes;
  if (!alters.empty()) s += "\n" + alters;
  if (entries.empty()) {
    s += "-- No table to publish.\n";
  } else {
    std::string list = "\n      " + join(entries, ",\n      ");
    // A partitioned rule table: its partitions' changes must arrive under its own name.
    const char* via_root = " SET (publish_via_partition_root = true)";
    if (partitioned)
      s += "\n-- Partitioned tables: publish_via_partition_root, so each partition's changes "
           "arrive\n-- under the partitioned table's name, which the rules use.\n";
    std::string body =
        "\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = " +
        quote_literal(options.publication) + ") THEN\n    CREATE PUBLICATION " + pub +
        " FOR TABLE" + list +
        (partitioned ? "\n      WITH (publish_via_partition_root = true)" : "") +
        ";\n  ELSE\n    ALTER PUBLICATION " + pub + " SET TABLE" + list + ";\n" +
        (partitioned ? "    ALTER PUBLICATION " + pub + via_root + ";\n" : "") + "  END IF;\nEND\n";
    std::string tag = dollar_tag(body);
    s += "\nDO " + tag + body + tag + ";\n";
  }
  std::string slot = quote_literal(options.slot);
  out.outside =
      "\n-- The slot, outside a transaction (a slot cannot be created in one that has written).\n"
      "-- It keeps WAL until pgbust confirms it: drop it with pg_drop_replication_slot(" +
      slot +
      ")\n-- if pgbust is retired. (The daemon also creates it when sources.logical.create_slot is "
      "on.)\n"
      "SELECT pg_catalog.pg_create_logical_replication_slot(" +
      slot +
      ", 'pgoutput')\n"
      "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = " +
      slot + ");\n";
  out.sql = header("pgbust setup: publication " + quote_literal(options.publication) +
                       " and slot " + slot + " for the logical source.",
                   options.origin);
  out.sql +=
      "-- Safe to run again: the publication is created, or set to these tables.\n"
      "-- Run with: psql -v ON_ERROR_STOP=1 -f FILE\n\nBEGIN;\n" +
      s + "\nCOMMIT;\n" + out.outside;
  return out;
}

}  // namespace pgbust::cli::setup_sql
