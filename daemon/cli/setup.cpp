// `pgbust setup`: print (or, with --apply, run) the SQL the rules need: the publication and
// slot of the logical source, or with --notify the triggers of the NOTIFY source.
#include <algorithm>
#include <iostream>

#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/options.hpp"
#include "pgbust/cli/setup_sql.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/pg/catalog.hpp"
#include "pgbust/pg/libpq.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust::cli {

namespace {

setup_sql::Catalog read_catalog(PGconn* conn, const std::vector<setup_sql::TableNeeds>& tables) {
  setup_sql::Catalog catalog;
  for (const auto& t : tables)
    catalog[t.qualified()] = pgcatalog::read_table(conn, t.schema, t.table);
  return catalog;
}

void run_sql(PGconn* conn, const std::string& sql, const std::string& what) {
  pg::exec(conn, sql, what);
}

// The user a conninfo names (PQconninfoParse), or "" (libpq then uses the OS user or PGUSER).
std::string conninfo_user(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (err != nullptr) PQfreemem(err);
  std::string user;
  for (auto* o = opts; o != nullptr && o->keyword != nullptr; ++o)
    if (std::string_view(o->keyword) == "user" && o->val != nullptr) user = o->val;
  if (opts != nullptr) PQconninfoFree(opts);
  return user;
}

}  // namespace

int setup(int argc, char** argv) {
  CommandLine cl(
      "setup",

      "pgbust setup: the SQL the rules need, printed for review (or run with --apply)\n\n"
      "Without --notify: the publication (with column lists naming exactly the columns the rules\n"
      "read, PostgreSQL 15+) and the replication slot of the logical source. With --notify: a\n"
      "trigger function and triggers per rule table (or per sources.notify.tables) for the\n"
      "NOTIFY source, notifying on the first of sources.notify.channels, each payload signed with\n"
      "a key in pgbust.notify_key (unless sources.notify.verify is false).");
  std::string config_file, rules_path, conninfo, grant_to;
  // clang-format off
  cl.add()
    ("config,c", po::value(&config_file), "config file (YAML), e.g. /etc/pgbust/pgbust.yaml")
    ("rules", po::value(&rules_path), "rules file or rules.d directory (overrides `rules`)")
    ("postgres", po::value(&conninfo), "libpq conninfo (overrides postgres.conninfo)")
    ("notify", "NOTIFY triggers instead of the publication and slot")
    ("grant-to", po::value(&grant_to), "--notify: the role pgbust connects as, granted SELECT on "
     "the signing key (default: the user of the config's postgres.conninfo)")
    ("rotate-key", "--notify: a new signing key; the previous one is kept until the next rotation")
    ("apply", "run the SQL against the database instead of printing it")
    ("identity-full", "tables whose replica identity lacks old values the rules read get "
     "REPLICA IDENTITY FULL and publish every column, in the publication's transaction")
    ("offline", "do not connect: SQL from the rules alone (no column check, no key or replica "
                "identity lookup, so no column lists and no key-only oversized payloads)");
  // clang-format on
  if (auto exit = cl.parse(argc, argv)) return *exit;
  bool notify = cl.set("notify"), apply = cl.set("apply"), offline = cl.set("offline");
  if (apply && offline)
    return cl.usage_error("--apply needs the database; it cannot be combined with --offline");
  config::Config cfg;
  try {
    if (!config_file.empty()) {
      cfg = config::load(config_file);
    } else if (rules_path.empty()) {
      return cl.usage_error("give --config FILE (or at least --rules PATH)");
    }
  } catch (const config::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  if (!rules_path.empty()) cfg.rules = rules_path;
  // The role pgbust runs as: the config's user, before --postgres names another connection.
  std::string reader = grant_to.empty() ? conninfo_user(cfg.conninfo) : grant_to;
  bool reader_from_connection = reader.empty() && !cl.set("postgres");
  if (cl.set("postgres")) cfg.conninfo = conninfo;
  auto loaded = rules::RuleSet::load(cfg.rules);
  if (!loaded.errors.empty()) {
    for (const auto& d : loaded.errors) std::cerr << d.str() << "\n";
    return 1;
  }
  const rules::RuleSet& rules = *loaded.rules;
  auto tables = setup_sql::needs(rules);
  if (notify && cfg.notify && !cfg.notify->tables.empty()) {
    // Only the tables the NOTIFY source is configured to serve.
    const auto& only = cfg.notify->tables;
    std::erase_if(tables, [&](const setup_sql::TableNeeds& t) {
      return std::find(only.begin(), only.end(), t.qualified()) == only.end();
    });
    for (const auto& q : only)
      if (std::none_of(tables.begin(), tables.end(),
                       [&](const setup_sql::TableNeeds& t) { return t.qualified() == q; }))
        std::cerr << "pgbust setup: warning: sources.notify.tables names " << q
                  << ", which no rule names: no trigger for it\n";
  }
  std::string origin = "Generated by pgbust from " + cfg.rules.string() + " (" +
                       std::to_string(rules.rules().size()) + " rules, hash " + rules.hash() + ").";
  try {
    pg::Conn conn;
    setup_sql::Catalog catalog;
    if (!offline) {
      conn = pg::connect(cfg.conninfo);
      catalog = read_catalog(conn.get(), tables);
    }
    setup_sql::Output out;
    if (notify) {
      setup_sql::NotifyOptions o;
      if (cfg.notify && !cfg.notify->channels.empty()) o.channel = cfg.notify->channels.front();
      o.origin = origin;
      o.sign = !cfg.notify || cfg.notify->verify;
      o.rotate_key = cl.set("rotate-key");
      o.reader_role = reader;
      if (o.reader_role.empty() && reader_from_connection && conn) {
        // pgbust connects with this same conninfo: as this connection's user.
        auto res = pg::exec(conn.get(), "SELECT current_user", "reading the current user");
        o.reader_role = PQgetvalue(res.get(), 0, 0);
      }
      if (o.sign && o.reader_role.empty())
        std::cerr << "pgbust setup: warning: the role pgbust connects as is not known (give "
                     "--grant-to ROLE): grant it SELECT on pgbust.notify_key, or the NOTIFY "
                     "source cannot verify payloads\n";
      out = setup_sql::notify_sql(tables, offline ? nullptr : &catalog, o);
    } else {
      setup_sql::LogicalOptions o;
      if (cfg.logical) {
        o.publication = cfg.logical->publication;
        o.slot = cfg.logical->slot;
      }
      o.server_version = conn ? PQserverVersion(conn.get()) : 150000;
      o.origin = origin;
      o.identity_full = cl.set("identity-full");
      out = setup_sql::logical_sql(tables, offline ? nullptr : &catalog, o);
    }
    for (const auto& w : out.warnings) std::cerr << "pgbust setup: warning: " << w << "\n";
    for (const auto& e : out.errors) std::cerr << "pgbust setup: error: " << e << "\n";
    if (!apply) {
      std::cout << out.sql;
      return out.errors.empty() ? 0 : 1;
    }
    if (!out.errors.empty()) {
      std::cerr << "pgbust setup: nothing applied: fix the errors above first\n";
      return 1;
    }
    if (notify) {
      run_sql(conn.get(), out.sql,
              cfg.notify && !cfg.notify->verify
                  ? "creating the NOTIFY triggers"
                  : "creating the NOTIFY triggers and their signing key (pgcrypto; the role "
                    "needs CREATE on the database for schema pgbust)");
      std::cerr << "pgbust setup: NOTIFY triggers created on " << tables.size() << " table(s) on "
                << pg::describe(conn.get()) << "\n";
    } else {
      run_sql(conn.get(), "BEGIN;\n" + out.transactional + "\nCOMMIT;\n",
              "creating the publication");
      run_sql(conn.get(), out.outside, "creating the replication slot");
      std::cerr << "pgbust setup: publication and slot ready on " << pg::describe(conn.get())
                << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "pgbust setup: " << e.what() << "\n";
    if (!offline && !apply)
      std::cerr << "pgbust setup: (--offline prints the SQL without connecting)\n";
    return 1;
  }
}

}  // namespace pgbust::cli
