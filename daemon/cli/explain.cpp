// `pgbust explain`: the Redis commands the rules would send for one row change, printed in
// redis-cli syntax so a DBA can see (and paste) exactly what a change invalidates.
#include <algorithm>
#include <deque>
#include <iostream>
#include <map>
#include <set>

#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/options.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/core/json.hpp"
#include "pgbust/pipeline/publish.hpp"
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
    "NULL. An update without --old is an update whose old row the WAL did not carry\n"
    "(REPLICA IDENTITY DEFAULT): only the --key columns are known, equal to the new ones.\n"
    "\n"
    "Output, one command per line in the order the rules produce them (deduplicated):\n"
    "  UNLINK key           exact delete\n"
    "  SCAN-DELETE pattern  SCAN MATCH pattern, UNLINK what it finds\n"
    "  INCR key             revision bump (the daemon first seeds a missing counter with\n"
    "                       SET key <microsecond clock> NX, so it never repeats a value)\n"
    "  PUBLISH channel msg  once per transaction and channel, after everything else\n"
    "and comments: '# rule R matched', '# widened: rule R: why', '# no rule matched'.\n"
    "Exit status: 0 on success, 1 for invalid rules or bad input, 2 for usage errors.";

// An argument as redis-cli reads it back: bare when it can be, otherwise quoted.
std::string redis_cli_arg(std::string_view s) {
  bool bare = !s.empty(), printable = true;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7F || c == '"' || c == '\'') bare = false;
    if (c < 0x20 || c >= 0x7F) printable = false;
  }
  if (bare) return std::string(s);
  if (printable && s.find('\'') == std::string_view::npos) return "'" + std::string(s) + "'";
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c >= 0x7F) {
          out += "\\x";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// What the rules asked for, in order, per rule.
struct Recorder : rules::Sink {
  struct Fired {
    const rules::Rule* rule;
    std::vector<std::string> widened;
    std::vector<std::pair<rules::Action, std::string>> keys;
  };
  std::vector<Fired> fired_rules;
  void fired(const rules::Rule& r) override { fired_rules.push_back({&r, {}, {}}); }
  Fired& of(const rules::Rule& r) {
    if (fired_rules.empty() || fired_rules.back().rule != &r) fired_rules.push_back({&r, {}, {}});
    return fired_rules.back();
  }
  void emit(const rules::Rule& r, rules::Action a, std::string_view key) override {
    of(r).keys.emplace_back(a, std::string(key));
  }
  void widened(const rules::Rule& r, Unknown, std::string_view detail) override {
    of(r).widened.emplace_back(detail);
  }
};

struct BadInput {
  std::string message;
};

// Column values as PostgreSQL text, in the order given; nullopt is NULL.
using Values = std::vector<std::pair<std::string, std::optional<std::string>>>;

// A JSON object of column values.
Values read_row(const std::string& flag, const std::string& text) {
  json::Value v;
  try {
    v = json::parse(text);
  } catch (const json::ParseError& e) {
    throw BadInput{flag + ": invalid JSON at " + e.what()};
  }
  if (!v.is_object())
    throw BadInput{flag + ": expected a JSON object of column values, e.g. {\"id\": 5}, found " +
                   std::string(json::to_string(v.type()))};
  Values out;
  for (const auto& [name, value] : v.members()) {
    switch (value.type()) {
      case json::Value::Type::Null:
        out.emplace_back(name, std::nullopt);
        break;
      case json::Value::Type::Bool:
        out.emplace_back(name, value.as_bool() ? "t" : "f");
        break;
      case json::Value::Type::Number:
      case json::Value::Type::String:
        out.emplace_back(name, value.text());
        break;
      default:
        throw BadInput{flag + ": column " + json::quote(name) + " is " +
                       std::string(json::to_string(value.type())) +
                       "; expected the column's PostgreSQL text as a string (or a number, "
                       "boolean or null)"};
    }
  }
  return out;
}

struct Options {
  std::filesystem::path rules;
  std::string table, op, old_json, new_json, key_prefix;
  std::vector<std::string> keys;
  bool has_old = false, has_new = false;
};

int explain_change(const Options& o, const std::shared_ptr<const rules::RuleSet>& rules) {
  const rules::RuleSet& set = *rules;
  std::string err;
  auto name = rules::parse_table_name(o.table, &err);
  if (!name) throw BadInput{"--table '" + o.table + "': " + err};
  auto op = parse_op(o.op);
  if (!op) throw BadInput{"--op '" + o.op + "': expected insert, update, delete or truncate"};
  if (o.has_old && (*op == Op::Insert || *op == Op::Truncate))
    throw BadInput{"--old: " + std::string(to_string(*op)) + " has no old row"};
  if (o.has_new && (*op == Op::Delete || *op == Op::Truncate))
    throw BadInput{"--new: " + std::string(to_string(*op)) + " has no new row"};
  Values old_values = o.has_old ? read_row("--old", o.old_json) : Values{};
  Values new_values = o.has_new ? read_row("--new", o.new_json) : Values{};

  std::string qualified = name->schema + "." + name->table;
  std::vector<std::string> needed = set.columns_needed(name->schema, name->table);
  if (set.rules_for(name->schema, name->table).empty()) {
    std::cout << "# no rule names table " << qualified << "\n";
    return 0;
  }
  // Columns: those the rules read, then any other given ones. A given column the rules do
  // not read, a typo away from one they read that is not given, is a mistake; other unread
  // columns are fine (a pasted row) and noted.
  TableInfo table;
  table.schema = name->schema;
  table.name = name->table;
  table.columns = needed;
  auto given = [&](const Values& values, const std::string& c) {
    return std::any_of(values.begin(), values.end(), [&](const auto& v) { return v.first == c; });
  };
  std::vector<std::string> notes;
  auto add_column = [&](const std::string& c, const char* flag, const Values& values) {
    if (table.column_index(c) >= 0) return;
    std::string near = rules::suggest(c, needed);
    if (!near.empty() && !given(values, near))
      throw BadInput{std::string(flag) + ": no rule of " + qualified + " reads column '" + c +
                     "'; did you mean '" + near + "'?"};
    table.columns.push_back(c);
    if (std::string(flag) != "--key")
      notes.push_back("# note: no rule of " + qualified + " reads column '" + c + "'");
  };
  for (const auto& [c, v] : old_values) add_column(c, "--old", old_values);
  for (const auto& [c, v] : new_values) add_column(c, "--new", new_values);
  for (const auto& k : o.keys) add_column(k, "--key", {});
  for (const auto& n : notes) std::cout << n << "\n";
  table.key.assign(table.columns.size(), false);
  for (const auto& k : o.keys) table.key[static_cast<std::size_t>(table.column_index(k))] = true;

  std::deque<std::string> texts;
  auto image = [&](const Values& values) {
    RowImage img;
    img.values.assign(table.columns.size(), Datum::unknown(Unknown::Explicit));
    for (const auto& [c, v] : values) {
      auto i = static_cast<std::size_t>(table.column_index(c));
      if (!v) {
        img.values[i] = Datum::null();
      } else {
        texts.push_back(*v);
        img.values[i] = Datum::value(texts.back());
      }
    }
    return img;
  };
  RowImage old_row = image(old_values), new_row = image(new_values);
  ChangeEvent ev;
  ev.source = SourceKind::Explain;
  ev.op = *op;
  ev.table = &table;
  if (*op == Op::Delete || (*op == Op::Update && o.has_old)) ev.old_row = &old_row;
  if (*op == Op::Insert || *op == Op::Update) ev.new_row = &new_row;

  rules::Engine engine(rules, rules::EngineOptions{o.key_prefix});
  Recorder rec;
  engine.evaluate(ev, rec);
  if (rec.fired_rules.empty()) {
    std::cout << "# no rule matched\n";
    return 0;
  }
  static const char* kCommand[] = {"UNLINK", "SCAN-DELETE", "INCR"};
  std::set<std::pair<rules::Action, std::string>> printed;
  struct Message {
    std::set<std::string> tables;
    std::vector<std::string> lists[3];
  };
  std::map<std::string, Message> publish;
  for (const auto& f : rec.fired_rules) {
    std::cout << "# rule " << f.rule->name << " matched\n";
    for (const auto& w : f.widened)
      std::cout << "# widened: rule " << f.rule->name << ": " << w << "\n";
    for (auto action : {rules::Action::Delete, rules::Action::DeletePattern, rules::Action::Bump})
      for (const auto& [a, key] : f.keys) {
        if (a != action) continue;
        auto i = static_cast<std::size_t>(a);
        if (printed.insert({a, key}).second)
          std::cout << kCommand[i] << " " << redis_cli_arg(key) << "\n";
        if (!f.rule->publish.empty()) {
          auto& list = publish[f.rule->publish].lists[i];
          if (std::find(list.begin(), list.end(), key) == list.end()) list.push_back(key);
        }
      }
    if (f.rule->redelete_after.count() > 0)
      std::cout << "# rule " << f.rule->name << ": its deletes are sent again after "
                << f.rule->redelete_after.count() << "ms\n";
    if (!f.rule->publish.empty()) publish[f.rule->publish].tables.insert(qualified);
  }
  // The daemon's message (publish_message); source and position are the transaction's there.
  for (const auto& [channel, m] : publish) {
    PublishContent content;
    content.tables = m.tables;
    content.keys = m.lists[0];
    content.patterns = m.lists[1];
    content.revisions = m.lists[2];
    std::string msg = publish_message("explain", "", content);
    std::cout << "PUBLISH " << redis_cli_arg(channel) << " " << redis_cli_arg(msg) << "\n";
  }
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
    ("key-prefix", po::value(&o.key_prefix), "prefix for every key, e.g. :1: (Django)");
  // clang-format on
  if (auto exit = cl.parse(argc, argv)) return *exit;
  if ((rules_path.empty() && config_file.empty()) || o.table.empty() || o.op.empty())
    return cl.usage_error("give --rules PATH (or --config FILE), --table and --op");
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
    return explain_change(o, loaded.rules);
  } catch (const BadInput& e) {
    std::cerr << "pgbust explain: " << e.message << "\n";
    return 1;
  }
}

}  // namespace pgbust::cli
