// `pgbust setup`: print (or, with --apply, run) the SQL the rules need: the publication and
// slot of the logical source, or with --notify the triggers of the NOTIFY source.
#include <algorithm>
#include <boost/program_options.hpp>
#include <iostream>

#include "pgbust/cli.hpp"
#include "pgbust/config.hpp"
#include "pgbust/pg.hpp"
#include "pgbust/rules.hpp"
#include "pgbust/setup.hpp"

namespace po = boost::program_options;

namespace pgbust::cli {

namespace {

const char* kCatalogSql =
    "SELECT c.relreplident, a.attname, COALESCE(a.attnum = ANY(pk.indkey), false), "
    "COALESCE(a.attnum = ANY(ri.indkey), false) "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "LEFT JOIN pg_catalog.pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary "
    "LEFT JOIN pg_catalog.pg_index ri ON ri.indrelid = c.oid AND ri.indisreplident "
    "WHERE c.oid = pg_catalog.to_regclass($1) ORDER BY a.attnum";

std::string quoted_name(const setup::TableNeeds& t) {
  auto q = [](const std::string& s) {
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  };
  return q(t.schema) + "." + q(t.table);
}

setup::Catalog read_catalog(PGconn* conn, const std::vector<setup::TableNeeds>& tables) {
  setup::Catalog catalog;
  for (const auto& t : tables) {
    std::string name = quoted_name(t);
    const char* params[] = {name.c_str()};
    pg::Result res(PQexecParams(conn, kCatalogSql, 1, nullptr, params, nullptr, nullptr, 0));
    if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK)
      pg::fail(conn, "reading the catalog of " + t.qualified());
    setup::TableCatalog& c = catalog[t.qualified()];
    for (int r = 0; r < PQntuples(res.get()); ++r) {
      c.exists = true;
      c.replica_identity = PQgetvalue(res.get(), r, 0)[0];
      std::string col = PQgetvalue(res.get(), r, 1);
      c.columns.push_back(col);
      if (PQgetvalue(res.get(), r, 2)[0] == 't') c.primary_key.push_back(col);
      if (PQgetvalue(res.get(), r, 3)[0] == 't') c.identity_index.push_back(col);
    }
  }
  return catalog;
}

void run_sql(PGconn* conn, const std::string& sql, const std::string& what) {
  pg::exec(conn, sql, what);
}

}  // namespace

int setup(int argc, char** argv) {
  po::options_description opts(
      "pgbust setup: the SQL the rules need, printed for review (or run with --apply)\n\n"
      "Without --notify: the publication (with column lists naming exactly the columns the rules\n"
      "read, PostgreSQL 15+) and the replication slot of the logical source. With --notify: a\n"
      "trigger function and triggers per rule table (or per sources.notify.tables) for the\n"
      "NOTIFY source, notifying on the first of sources.notify.channels.\n\noptions");
  std::string config_file, rules_path, conninfo;
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("config,c", po::value(&config_file), "config file (YAML), e.g. /etc/pgbust/pgbust.yaml")
    ("rules", po::value(&rules_path), "rules file or rules.d directory (overrides `rules`)")
    ("postgres", po::value(&conninfo), "libpq conninfo (overrides postgres.conninfo)")
    ("notify", "NOTIFY triggers instead of the publication and slot")
    ("apply", "run the SQL against the database instead of printing it")
    ("offline", "do not connect: SQL from the rules alone (no column check, no key or replica "
                "identity lookup, so no column lists and no key-only oversized payloads)");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "pgbust setup: " << e.what() << "\n\n" << opts;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  bool notify = vm.count("notify") != 0, apply = vm.count("apply") != 0,
       offline = vm.count("offline") != 0;
  if (apply && offline) {
    std::cerr << "pgbust setup: --apply needs the database; it cannot be combined with --offline\n";
    return 2;
  }
  config::Config cfg;
  try {
    if (!config_file.empty()) {
      cfg = config::load(config_file);
    } else if (rules_path.empty()) {
      std::cerr << "pgbust setup: give --config FILE (or at least --rules PATH)\n";
      return 2;
    }
  } catch (const config::ConfigError& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  if (!rules_path.empty()) cfg.rules = rules_path;
  if (vm.count("postgres")) cfg.conninfo = conninfo;
  auto loaded = rules::RuleSet::load(cfg.rules);
  if (!loaded.errors.empty()) {
    for (const auto& d : loaded.errors) std::cerr << d.str() << "\n";
    return 1;
  }
  const rules::RuleSet& rules = *loaded.rules;
  auto tables = setup::needs(rules);
  if (notify && cfg.notify && !cfg.notify->tables.empty()) {
    // Only the tables the NOTIFY source is configured to serve.
    const auto& only = cfg.notify->tables;
    std::erase_if(tables, [&](const setup::TableNeeds& t) {
      return std::find(only.begin(), only.end(), t.qualified()) == only.end();
    });
    for (const auto& q : only)
      if (std::none_of(tables.begin(), tables.end(),
                       [&](const setup::TableNeeds& t) { return t.qualified() == q; }))
        std::cerr << "pgbust setup: warning: sources.notify.tables names " << q
                  << ", which no rule names: no trigger for it\n";
  }
  std::string origin = "Generated by pgbust from " + cfg.rules.string() + " (" +
                       std::to_string(rules.rules().size()) + " rules, hash " + rules.hash() + ").";
  try {
    pg::Conn conn;
    setup::Catalog catalog;
    if (!offline) {
      conn = pg::connect(cfg.conninfo);
      catalog = read_catalog(conn.get(), tables);
    }
    setup::Output out;
    if (notify) {
      setup::NotifyOptions o;
      if (cfg.notify && !cfg.notify->channels.empty()) o.channel = cfg.notify->channels.front();
      o.origin = origin;
      out = setup::notify_sql(tables, offline ? nullptr : &catalog, o);
    } else {
      setup::LogicalOptions o;
      if (cfg.logical) {
        o.publication = cfg.logical->publication;
        o.slot = cfg.logical->slot;
      }
      o.server_version = conn ? PQserverVersion(conn.get()) : 150000;
      o.origin = origin;
      out = setup::logical_sql(tables, offline ? nullptr : &catalog, o);
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
      run_sql(conn.get(), out.sql, "creating the NOTIFY triggers");
      std::cerr << "pgbust setup: NOTIFY triggers created on " << tables.size() << " table(s) on "
                << pg::describe(conn.get()) << "\n";
    } else {
      run_sql(conn.get(), "BEGIN;\n" + out.transactional + "\nCOMMIT;\n", "creating the publication");
      run_sql(conn.get(), out.outside, "creating the replication slot");
      std::cerr << "pgbust setup: publication and slot ready on " << pg::describe(conn.get()) << "\n";
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
