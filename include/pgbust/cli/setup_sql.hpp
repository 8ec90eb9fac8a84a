// The SQL of `pgbust setup`: the publication and slot of the logical source, or the NOTIFY
// triggers of the notify source, for exactly the tables and columns the rules read. Pure:
// what the database looks like comes in as a catalog description (or not at all, offline).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "pgbust/pg/catalog.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust::cli::setup_sql {

// One table the rules name, with the columns they read.
struct TableNeeds {
  std::string schema, table;
  std::vector<std::string> columns;
  // Columns whose old values some rule reads on update/delete (its keys widen, or its
  // when/changed cannot compare, without them).
  std::vector<std::string> old_values = {};
  std::string qualified() const { return schema + "." + table; }
};

std::vector<TableNeeds> needs(const rules::RuleSet& rules);

// What the catalog says about a table, when setup can ask the database (pgcatalog::read_table).
using TableCatalog = pgcatalog::Table;

// By "schema.table". Absent (nullptr): offline, the SQL is made from the rules alone.
using Catalog = pgcatalog::Tables;

struct Output {
  std::string sql;                    // everything, in order, ready for psql -f
  std::string transactional;          // the part inside BEGIN/COMMIT
  std::string outside;                // what must run outside a transaction (the slot)
  std::vector<std::string> errors;    // tables left out: the SQL would fail for them
  std::vector<std::string> warnings;  // columns left out, tables that will widen, ...
};

struct NotifyOptions {
  std::string channel = "pgbust";
  std::string origin;  // a comment line saying what it was generated from (may be empty)
  // Signed payloads (sources.notify.verify): pgcrypto, schema pgbust with the key table
  // pgbust.notify_key (a key created unless one exists) and pgbust.notify_sign(), both
  // closed to PUBLIC; the trigger functions are SECURITY DEFINER and sign every payload.
  bool sign = true;
  bool rotate_key = false;       // add a new key (signing uses it), keep only the previous one
  std::string reader_role = {};  // the role pgbust connects as: granted SELECT on the key table
};

// One trigger function per table (CREATE OR REPLACE) sending {"schema", "table", "op", "new",
// "old"} with the needed columns and the primary key as text, signed (options.sign: the
// functions are SECURITY DEFINER, closed to PUBLIC); a payload over 7999 bytes is
// replaced by the key columns with "oversized": true, or without rows when even that is too
// large. Row triggers AFTER INSERT OR UPDATE OR DELETE, a statement trigger AFTER TRUNCATE,
// dropped and created again (idempotent), all in one transaction.
Output notify_sql(const std::vector<TableNeeds>& tables, const Catalog* catalog,
                  const NotifyOptions& options);

struct LogicalOptions {
  std::string publication = "pgbust";
  std::string slot = "pgbust";
  int server_version = 150000;  // PQserverVersion; column lists need 15 or later
  std::string origin;
  // Tables whose replica identity lacks old values the rules read get REPLICA IDENTITY FULL
  // and publish every column, in the same transaction as the publication change (so no
  // moment has a column list that leaves out an identity column).
  bool identity_full = false;
};

// CREATE PUBLICATION (or ALTER PUBLICATION ... SET TABLE when it exists) for the rule tables,
// with column lists (PostgreSQL 15+) naming exactly the columns the rules read plus the
// replica identity columns, then the slot (pgoutput) unless it exists. A table whose replica
// identity lacks old values the rules read is a warning naming the option that fixes it, or
// with `identity_full` it is fixed.
Output logical_sql(const std::vector<TableNeeds>& tables, const Catalog* catalog,
                   const LogicalOptions& options);

// The trigger function's name for a table: pgbust_notify_<table>, shortened with a hash
// when it would exceed PostgreSQL's 63-byte identifiers.
std::string notify_function_name(const std::string& table);

}  // namespace pgbust::cli::setup_sql
