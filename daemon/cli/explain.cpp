// `pgbust explain`: the Redis commands the rules would send for one row change, printed in
// redis-cli syntax so a DBA can see (and paste) exactly what a change invalidates.
#include <iostream>

#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/explain_model.hpp"
#include "pgbust/cli/options.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust::cli {

namespace {

constexpr const char* kAbout =
    "pgbust explain: print the Redis commands the rules would send for one row change\n"
    "\n"
    "  pgbust explain --rules rules.d --table work_order_task --op update \\\n"
    "      --old '{\"id\": 1, \"assigned_department_id\": 5}' \\\n"
    "      --new '{\"id\": 1, \"assigned_department_id\": 7}'\n"
    "\n"
    "Row values are JSON objects of the columns as PostgreSQL text (numbers and booleans are\n"
    "accepted: true becomes t). A column the rules read but --old/--new does not give is\n"
    "unknown, and the rule widens as it would for a value missing from the WAL; JSON null is\n"
    "NULL.\n"
    "\n"
    "The old row is what the WAL carries under the table's replica identity (--identity):\n"
    "  full           every old value given with --old\n"
    "  default        the primary key (--key, else id): an update that keeps it carries no\n"
    "                 old row (old key = new key, other old values unknown, as the daemon\n"
    "                 sees it); one that changes it, and a delete, carry the old key alone\n"
    "  index:COLUMNS  the same with the index's columns\n"
    "Without --identity, --old is taken as given, and an update without --old is DEFAULT.\n"
    "\n"
    "With --db (and --config), the rows come from the database:\n"
    "  pgbust explain --config pgbust.yaml --db --table work_order_task --where 'id = 5' \\\n"
    "      --set 'assigned_department_id = 20'\n"
    "reads the rows WHERE selects and evaluates the --set expressions on them in a READ ONLY\n"
    "transaction, with the daemon's connection settings (so values render as the daemon sees\n"
    "them), and explains each row's UPDATE (or --op delete) under the table's replica\n"
    "identity from the catalog. Triggers and generated columns are not run.\n"
    "\n"
    "Output, one command per line in the order the daemon applies them (deduplicated):\n"
    "each rule's deletes, then every bump, then the messages:\n"
    "  UNLINK key           exact delete\n"
    "  SCAN-DELETE pattern  keyspace pass: SCAN, UNLINK every key the pattern matches\n"
    "  INCR key             revision bump, after every delete and keyspace pass above (so\n"
    "                       a widened bump's SCAN-DELETE rev:...:* never removes the counter\n"
    "                       it bumps); the daemon first seeds a missing counter with\n"
    "                       SET key <microsecond clock> NX, so it never repeats a value\n"
    "  PUBLISH channel msg  once per transaction and channel, after everything else\n"
    "and comments: '# rule R matched', '# widened: rule R: why', '# no rule matched'.\n"
    "Exit status: 0 on success, 1 for invalid rules or bad input, 2 for usage errors.";

struct Options {
  std::filesystem::path rules;
  std::string table, op, old_json, new_json, key_prefix, identity, conninfo, where;
  std::vector<std::string> keys, sets;
  bool has_old = false, has_new = false;
};

int explain_change(const Options& o, const std::shared_ptr<const rules::RuleSet>& rules) {
  Change change;
  change.table = o.table;
  auto op = parse_op(o.op);
  if (!op) throw BadChange{"--op '" + o.op + "': expected insert, update, delete or truncate"};
  change.op = *op;
  if (o.has_old) change.old_row = parse_row_json("--old", o.old_json);
  if (o.has_new) change.new_row = parse_row_json("--new", o.new_json);
  if (!o.identity.empty()) {
    std::string err;
    auto id = parse_identity(o.identity, &err);
    if (!id) throw BadChange{"--identity '" + o.identity + "': " + err};
    change.identity = *id;
  }
  change.key = o.keys;
  change.key_prefix = o.key_prefix;
  for (const auto& line : explain(rules, change).lines) std::cout << line << "\n";
  return 0;
}

// --db: the rows WHERE selects, each explained as the daemon would see its update/delete.
int explain_db(const Options& o, const std::shared_ptr<const rules::RuleSet>& rules) {
  DbQuery q;
  q.conninfo = o.conninfo;
  q.table = o.table;
  q.where = o.where;
  q.sets = o.sets;
  q.key_prefix = o.key_prefix;
  if (!o.op.empty()) {
    auto op = parse_op(o.op);
    if (!op) throw BadChange{"--op '" + o.op + "': expected update or delete"};
    q.op = *op;
  }
  DbRows rows = read_db_rows(rules, q);
  std::cout << "# " << rows.identity << "\n";
  if (rows.rows.empty()) {
    std::cout << "# no row matches WHERE " << o.where << "\n";
    return 0;
  }
  std::size_t i = 0;
  for (const auto& row : rows.rows) {
    std::cout << "# row " << ++i << " of " << rows.rows.size() << (rows.truncated ? "+" : "")
              << (row.label.empty() ? "" : ": " + row.label) << "\n";
    for (const auto& line : explain(rules, row.change).lines) std::cout << line << "\n";
  }
  if (rows.truncated)
    std::cout << "# only the first " << kMaxDbRows << " rows are explained; narrow --where\n";
  return 0;
}

}  // namespace

int explain(int argc, char** argv) {
  CommandLine cl("explain", kAbout);
  Options o;
  std::string rules_path, config_file;
  // clang-format off
  cl.add()
    ("rules,r", po::value(&rules_path), "rules file or rules.d directory")
    ("config,c", po::value(&config_file), "config file: its rules and redis.key_prefix (the "
                                          "flags override them)")
    ("table,t", po::value(&o.table), "the changed table: schema.table or table (schema public)")
    ("op", po::value(&o.op), "insert, update, delete or truncate")
    ("old", po::value(&o.old_json), "the old row as a JSON object (update, delete)")
    ("new", po::value(&o.new_json), "the new row as a JSON object (insert, update)")
    ("key", po::value(&o.keys)->composing(), "a replica identity (primary key) column; repeat or "
                                             "separate with commas")
    ("identity", po::value(&o.identity), "the table's replica identity: default (the primary "
                                         "key, --key), full, or index:COLUMNS; it decides which "
                                         "old values an update or delete carries in the WAL")
    ("key-prefix", po::value(&o.key_prefix), "prefix for every key, e.g. :1: (Django)")
    ("db", "read the rows from the database of --config (postgres.conninfo, the daemon's "
           "session settings) in a READ ONLY transaction, with the table's real replica "
           "identity; nothing is written")
    ("where", po::value(&o.where), "--db: the rows to explain, an SQL condition (\"id = 5\")")
    ("set", po::value(&o.sets)->composing(), "--db: an assignment of the UPDATE, COLUMN = "
                                             "EXPRESSION, evaluated by PostgreSQL on each row; "
                                             "repeat for several columns");
  // clang-format on
  if (auto exit = cl.parse(argc, argv)) return *exit;
  bool db = cl.set("db");
  if (db) {
    if (config_file.empty() || o.table.empty() || o.where.empty())
      return cl.usage_error("--db needs --config FILE, --table and --where");
    if (cl.set("old") || cl.set("new") || cl.set("identity") || cl.set("key"))
      return cl.usage_error(
          "--db reads the rows and the replica identity from the database; "
          "drop --old, --new, --identity and --key");
  } else if ((rules_path.empty() && config_file.empty()) || o.table.empty() || o.op.empty()) {
    return cl.usage_error("give --rules PATH (or --config FILE), --table and --op");
  } else if (cl.set("where") || cl.set("set")) {
    return cl.usage_error("--where and --set need --db");
  }
  o.has_old = cl.set("old");
  o.has_new = cl.set("new");
  std::vector<std::string> keys;
  for (const auto& k : o.keys) {
    std::size_t start = 0;
    for (std::size_t comma; (comma = k.find(',', start)) != std::string::npos; start = comma + 1)
      if (comma > start) keys.push_back(k.substr(start, comma - start));
    if (start < k.size()) keys.push_back(k.substr(start));
  }
  o.keys = keys;
  o.rules = rules_path;
  if (!config_file.empty()) {
    try {
      config::Config cfg = config::load(config_file);
      if (o.rules.empty()) o.rules = cfg.rules;
      if (!cl.set("key-prefix")) o.key_prefix = cfg.redis.key_prefix;
      o.conninfo = cfg.conninfo;
    } catch (const config::ConfigError& e) {
      for (const auto& p : e.problems()) std::cerr << p << "\n";
      return 1;
    } catch (const Error& e) {
      std::cerr << "pgbust explain: " << e.what() << "\n";
      return 1;
    }
  }
  auto loaded = rules::RuleSet::load(o.rules);
  if (!loaded.rules) {
    for (const auto& e : loaded.errors) std::cerr << e.str() << "\n";
    std::cerr << "pgbust explain: the rules are invalid (see pgbust check)\n";
    return 1;
  }
  try {
    return db ? explain_db(o, loaded.rules) : explain_change(o, loaded.rules);
  } catch (const BadChange& e) {
    std::cerr << "pgbust explain: " << e.message << "\n";
    return 1;
  } catch (const Error& e) {
    std::cerr << "pgbust explain: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace pgbust::cli
