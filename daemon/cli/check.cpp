// `pgbust check`: validate the rules (and the config file), print every error GCC style,
// warn about rules that will widen, with --db check them against the live database, and
// gate deploys with the exit code.
#include <algorithm>
#include <iostream>
#include <set>

#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/daemon.hpp"
#include "pgbust/cli/db_check.hpp"
#include "pgbust/cli/options.hpp"
#include "pgbust/cli/redis_options.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/pg/conninfo.hpp"
#include "pgbust/pg/libpq.hpp"
#include "pgbust/redis/cluster.hpp"
#include "pgbust/redis/redis.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust::cli {

namespace {

constexpr const char* kAbout =
    "pgbust check: validate the rules (and the config file) before they go live\n"
    "\n"
    "Exit status: 0 when valid (one summary line on stdout, warnings on stderr), 1 when\n"
    "not (every error on stderr as FILE:LINE:COL: error: ...), 2 for usage errors.\n"
    "Warnings name rules that will widen (pattern deletes or their fallback) because they\n"
    "need old values that REPLICA IDENTITY DEFAULT does not put in the WAL (without a\n"
    "database, a column named id is presumed to be the primary key).\n"
    "\n"
    "With --db it also connects (postgres.conninfo, or --postgres) and checks that every\n"
    "rule's table and columns exist; for the logical source that the publication exists,\n"
    "covers the rule tables and publishes the columns they read, that the slot exists (or\n"
    "can be created) and the role can stream, and each table's real replica identity (which\n"
    "rules widen on an UPDATE and a DELETE, and the cheapest exact remedy: REPLICA IDENTITY\n"
    "USING INDEX on a unique NOT NULL index covering what they read, else FULL; whether a\n"
    "rule's stable columns are enforced by a trigger); for the notify source the triggers;\n"
    "for the poll source the watermark columns and an index on them. Problems at a rule\n"
    "print FILE:LINE:COL, the others \"pgbust check: error: ...\"; the last line on stdout is\n"
    "\"check: N errors, M warnings against HOST:PORT dbname=DB\".\n"
    "Exit 1 when there is an error (warnings alone exit 0).";

// An SQL identifier, quoted when PostgreSQL would otherwise fold or reject it.
std::string sql_ident(const std::string& name) {
  bool plain = !name.empty() && !(name[0] >= '0' && name[0] <= '9');
  for (char c : name)
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  if (plain) return name;
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

// Warnings for rules whose keys need old values of columns that may not be in the WAL.
std::vector<rules::Diagnostic> identity_warnings(const rules::RuleSet& set) {
  std::vector<rules::Diagnostic> out;
  for (const rules::Rule& rule : set.rules()) {
    // Without a database the primary key is not known; a column named id is presumed to be it.
    rules::IdentityCost cost = rules::default_identity_cost(rule, {"id"});
    if (cost.empty()) continue;
    std::string list;
    for (std::size_t i = 0; i < cost.columns.size(); ++i) list += (i ? ", " : "") + cost.columns[i];
    std::string effect;
    if (cost.fallback) {
      effect = "runs its fallback";
    } else {
      effect = "widens to SCAN-DELETE";
      for (std::size_t i = 0; i < cost.patterns.size() && i < 3; ++i)
        effect += (i ? ", " : " ") + cost.patterns[i];
      if (cost.patterns.size() > 3) effect += ", ...";
    }
    rules::Diagnostic d;
    d.file = rule.file;
    d.line = rule.line;
    d.column = rule.column;
    d.warning = true;
    d.message = "rule '" + rule.name + "' needs old values of " + list +
                " on update/delete; with REPLICA IDENTITY DEFAULT only primary-key columns are "
                "in the WAL, so unless " +
                (cost.columns.size() == 1 ? "it is" : "they are") +
                " in the primary key the rule " + effect + "; to avoid it: ALTER TABLE " +
                sql_ident(rule.schema) + "." + sql_ident(rule.table) + " REPLICA IDENTITY FULL;";
    out.push_back(std::move(d));
  }
  return out;
}

std::string plural(std::size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// "host:port dbname=app" of a connection, for the summary line.
std::string server_name(const PGconn* conn) {
  const char* host = PQhost(conn);
  const char* port = PQport(conn);
  std::string out = host && *host ? host : "localhost";
  if (port && *port) out += std::string(":") + port;
  if (const char* db = PQdb(conn); db && *db) out += std::string(" dbname=") + db;
  return out;
}

// The checks against the database; prints findings and the summary, returns the exit code.
int check_db(const config::Config& cfg, const rules::RuleSet& set,
             const std::vector<rules::Diagnostic>& rule_warnings, const std::string& config_file,
             bool quiet) {
  db_check::Options opt;
  if (!config_file.empty()) opt.setup_command += " --config " + config_file;
  std::vector<db_check::Finding> findings;
  std::string server;
  try {
    pg::Conn conn = pg::connect(cfg.conninfo);
    server = server_name(conn.get());
    findings = db_check::check(db_check::read(conn.get(), cfg, set), cfg, set, opt);
  } catch (const Error& e) {
    std::cerr << "pgbust check: " << e.what() << "\n";
    return 1;
  }
  std::size_t errors = 0, warnings = rule_warnings.size();
  for (const auto& f : findings) (f.error ? errors : warnings) += 1;
  if (!quiet)
    for (const auto& w : rule_warnings) std::cerr << w.str() << "\n";
  for (const auto& f : findings)
    if (f.error || !quiet) std::cerr << f.str() << "\n";
  if (!quiet)
    std::cout << "check: " << plural(errors, "error") << ", " << plural(warnings, "warning")
              << " against " << server << "\n";
  return errors ? 1 : 0;
}

// --redis: connect, authenticate, and check the ACL user may run what pgbust sends, on
// every target.
int check_redis(const config::Redis& target, const rules::RuleSet& set, bool quiet) {
  const std::string probe = target.key_prefix + "pgbust:check:probe";
  // Deletes first in probe order so a probe key made by SET NX / INCR is gone at the end.
  std::vector<std::vector<std::string>> commands{{"SET", probe, "1", "NX"},
                                                 {"INCR", probe},
                                                 {"SCAN", "0", "MATCH", probe, "COUNT", "1"},
                                                 {"PING"},
                                                 {"UNLINK", probe}};
  std::set<std::string> channels;
  for (const auto& rule : set.rules())
    if (!rule.publish.empty()) channels.insert(rule.publish);
  for (const auto& c : channels) commands.push_back({"PUBLISH", c, "{}"});
  std::set<std::string> streams;
  for (const auto& rule : set.rules())
    if (!rule.stream.empty()) streams.insert(rule.stream);
  // Checked with ACL DRYRUN only: a probe would add an entry subscribers read.
  for (const auto& s : streams)
    commands.push_back(
        {"XADD", s, "MAXLEN", "~", std::to_string(target.stream_maxlen), "*", "message", "{}"});
  redis::AccessReport r;
  try {
    r = redis::check_access(redis_options(target), commands);
  } catch (const Error& e) {
    std::cerr << "pgbust check: error: " << e.what() << "\n";
    return 1;
  }
  for (const auto& refused : r.refused)
    std::cerr << "pgbust check: error: redis " << r.server << ": user '" << r.user
              << "' may not run " << refused << "\n";
  if (!r.refused.empty()) {
    std::string grant = "ACL SETUSER " + r.user;
    for (const auto& g : r.grants) grant += " " + g;
    std::cerr << "pgbust check: grant what is missing with: " << grant << "\n";
    return 1;
  }
  if (!quiet) {
    std::cout << "redis OK: " << r.server << " as user '" << r.user << "' may run";
    for (std::size_t i = 0; i < r.allowed.size(); ++i)
      std::cout << (i ? ", " : " ") << r.allowed[i];
    std::cout << " (checked with " << r.method << ")\n";
  }
  return 0;
}

}  // namespace

int check(int argc, char** argv) {
  CommandLine cl("check", kAbout);
  std::string rules_path, config_file, conninfo;
  // clang-format off
  cl.add()
    ("rules,r", po::value(&rules_path), "rules file or rules.d directory (*.yaml, *.yml in name order)")
    ("config,c", po::value(&config_file), "config file: validate it and check the rules it names "
                                          "(--rules overrides them)")
    ("db", "also check against the database (postgres.conninfo of the config, or --postgres)")
    ("postgres", po::value(&conninfo), "libpq conninfo for --db (overrides postgres.conninfo; "
                                       "passwords via PGPASSFILE or a service file)")
    ("redis", "also connect to Redis as run would (URL, TLS, AUTH) and check that the user may "
              "run every command pgbust sends; prints the ACL SETUSER line that grants what is "
              "missing")
    ("quiet,q", "print errors only: no summary line, no warnings");
  // clang-format on
  if (auto exit = cl.parse(argc, argv)) return *exit;
  if (rules_path.empty() && config_file.empty())
    return cl.usage_error("give --rules PATH or --config FILE");
  bool db = cl.set("db");
  if (cl.set("postgres") && !db) return cl.usage_error("--postgres only applies with --db");
  bool quiet = cl.set("quiet");
  std::filesystem::path path = rules_path;
  config::Config cfg;
  cfg.logical = config::Logical{};  // without a config file: the default source
  if (!config_file.empty()) {
    try {
      cfg = config::load(config_file);
      if (path.empty()) path = cfg.rules;
    } catch (const config::ConfigError& e) {
      for (const auto& p : e.problems()) std::cerr << p << "\n";
      std::cerr << "pgbust check: " << config_file << ": " << plural(e.problems().size(), "error")
                << "\n";
      return 1;
    } catch (const Error& e) {
      std::cerr << "pgbust check: " << config_file << ": " << e.what() << "\n";
      return 1;
    }
  }
  if (!config_file.empty()) {
    // Each target's URL, options and TLS files, exactly as run (it connects only in the loop).
    bool bad = false;
    const auto targets = config::redis_targets(cfg);
    for (const auto& t : targets) {
      try {
        auto validate = redis::make_target(redis_options(t));
      } catch (const Error& e) {
        std::cerr << "pgbust check: " << config_file << ": "
                  << (targets.size() > 1 ? "redis target '" + t.name + "': " : "") << e.what()
                  << "\n";
        bad = true;
      }
    }
    if (bad) return 1;
  }
  if (cl.set("postgres")) cfg.conninfo = conninfo;
  if (!config_file.empty() || cl.set("postgres")) {
    // As run refuses it: a conninfo libpq cannot parse is a configuration error.
    if (auto problem = pg::conninfo_problem(cfg.conninfo)) {
      std::cerr << "pgbust check: "
                << (cl.set("postgres") ? std::string("--postgres")
                                       : config_file + ": postgres.conninfo")
                << ": " << *problem << "\n";
      return 1;
    }
  }
  auto result = rules::RuleSet::load(path);
  if (!result.errors.empty()) {
    for (const auto& e : result.errors) std::cerr << e.str() << "\n";
    std::cerr << "pgbust check: " << path.string() << ": " << plural(result.errors.size(), "error")
              << "\n";
    return 1;
  }
  const auto& set = *result.rules;
  auto warnings = result.warnings;
  if (!db) {
    // Offline: the replica identity is not known; presume DEFAULT with an id key.
    auto identity = identity_warnings(set);
    warnings.insert(warnings.end(), identity.begin(), identity.end());
  }
  if (!quiet) {
    if (!db)
      for (const auto& w : warnings) std::cerr << w.str() << "\n";
    std::cout << "rules OK: " << plural(set.rules().size(), "rule") << " on "
              << plural(set.tables().size(), "table") << " from " << path.string() << " (hash "
              << set.hash() << ")";
    if (!warnings.empty()) std::cout << ", " << plural(warnings.size(), "warning");
    if (!config_file.empty()) std::cout << "; config OK: " << config_file;
    std::cout << "\n" << std::flush;
  }
  if (cl.set("redis")) {
    if (config_file.empty()) return cl.usage_error("--redis needs --config FILE");
    int rc = 0;
    for (const auto& target : config::redis_targets(cfg))
      rc = std::max(rc, check_redis(target, set, quiet));
    if (rc != 0 || !db) return rc;
  }
  if (db) return check_db(cfg, set, warnings, config_file, quiet);
  return 0;
}

}  // namespace pgbust::cli
