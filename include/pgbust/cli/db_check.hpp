// `pgbust check --db`: the rules and the config against the live database. What the database
// looks like is read once into a Snapshot; the checks on it are pure.
#pragma once

#include <libpq-fe.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pgbust/core/config.hpp"
#include "pgbust/pg/catalog.hpp"
#include "pgbust/rules/rules.hpp"
#include "pgbust/sources/poll_plan.hpp"

namespace pgbust::cli::db_check {

// One problem found. At a rule it prints GCC style ("FILE:LINE:COL: error: ..."); about the
// database as a whole it prints "pgbust check: error: ...".
struct Finding {
  bool error = true;  // false: a warning (exit status stays 0)
  std::string file;   // the rule file, or "" when no position applies
  int line = 0, column = 0;
  std::string message;
  std::string str() const;
};

// Everything the checks look at.
struct Snapshot {
  pgcatalog::Server server;
  pgcatalog::Tables tables;              // rule tables and poll tables, by "schema.table"
  std::vector<std::string> table_names;  // every table; read only when a rule table is missing
  // The logical source's publication and slot, and whether a replication connection works
  // (nullopt: it does, or it was not tried because the role cannot replicate).
  std::optional<pgcatalog::Publication> publication;
  std::optional<pgcatalog::Slot> slot;
  std::optional<std::string> replication_error;
  std::map<std::string, std::vector<pgcatalog::Trigger>> triggers;  // notify tables, and
                                                                    // tables with stable rules
  // Logical source: indexes REPLICA IDENTITY USING INDEX could use, per rule table.
  std::map<std::string, std::vector<pgcatalog::IdentityIndex>> identity_indexes;
  std::map<std::string, std::vector<poll::CatalogColumn>> poll_columns;     // poll tables
  std::map<std::string, std::vector<std::string>> index_leading_columns;    // poll tables
  std::map<std::string, std::vector<pgcatalog::Trigger>> poll_triggers;     // poll tables
  std::map<std::string, std::map<std::string, std::string>> poll_defaults;  // poll tables
};

// Reads what check() needs for the sources `cfg` configures. Throws pgbust::Error when a
// catalog query fails.
Snapshot read(PGconn* conn, const config::Config& cfg, const rules::RuleSet& rules);

struct Options {
  // How the hints spell the setup command, e.g. "pgbust setup --config /etc/pgbust/pgbust.yaml".
  std::string setup_command = "pgbust setup";
};

// Every finding, in order: tables and columns (per rule), then the logical source
// (publication, slot, replica identity), the notify source (triggers), the poll source
// (watermarks and their indexes).
std::vector<Finding> check(const Snapshot& db, const config::Config& cfg,
                           const rules::RuleSet& rules, const Options& options = {});

}  // namespace pgbust::cli::db_check
