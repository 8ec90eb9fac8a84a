// `pgbust test RULES TESTS...`: table-driven rule tests in YAML (like `promtool test rules`).
// Each case describes one row change; the commands the rules send for it (the explain model,
// so the daemon's) are compared with what the case expects, and a failing case prints a diff
// at its FILE:LINE. Exit 1 when any case fails, so a rule change that breaks a key an app
// reads fails before it ships.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <iostream>

#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/explain_model.hpp"
#include "pgbust/cli/options.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust::cli {

namespace {

constexpr const char* kAbout =
    "pgbust test: run table-driven tests of the rules\n"
    "\n"
    "  pgbust test rules.yaml rules_test.yaml [more test files...]\n"
    "\n"
    "A test file (YAML) lists cases; each describes one row change and what it must send:\n"
    "\n"
    "  key_prefix: \":1:\"            # optional, for every case (--key-prefix overrides)\n"
    "  tests:\n"
    "    - name: moving a task invalidates both departments\n"
    "      table: work_order_task     # schema.table or table (schema public)\n"
    "      op: update                 # insert, update, delete or truncate\n"
    "      identity: full             # default (the default; key: [id]), full, index:COLUMNS\n"
    "      source: logical            # logical (the default), notify or poll\n"
    "      time_zone: Europe/Berlin   # the zone the timestamptz values below are written in\n"
    "      old: {id: 1, assigned_department_id: 10}\n"
    "      new: {id: 1, assigned_department_id: 20}\n"
    "      expect:                    # the exact commands, in order, as explain prints them\n"
    "        - UNLINK :1:task_stats:10\n"
    "        - UNLINK :1:task_stats:20\n"
    "        - PUBLISH cache-invalidation   # a channel alone: its message is not compared\n"
    "        - XADD cache-log           # a stream alone, likewise\n"
    "      includes: [\":1:task_stats:10\"]  # invalidated (exactly, or by a pattern)\n"
    "      excludes: [\":1:task_stats:30\"]  # not invalidated (exactly, nor by a pattern)\n"
    "\n"
    "Row values are the columns' PostgreSQL text (true/false become t/f; null, ~ or nothing\n"
    "is NULL); a column not given is unknown and the rule widens, as in explain. The source\n"
    "decides what is known of the old row: logical, the WAL's under the replica identity;\n"
    "notify, the whole old row (give old); poll, an update's key as now (no old), and a\n"
    "delete or truncate widens every rule of the table. With time_zone, timestamptz values\n"
    "(with their UTC offset, as psql prints them under SET TimeZone = ZONE) become the UTC\n"
    "text pgbust's sessions see; an offset that is not the zone's is an error. Each case\n"
    "needs expect, includes or excludes (or several). A failing case prints\n"
    "'FILE:LINE: test NAME failed' and a diff: '- ' expected but not sent, '+ ' sent but not\n"
    "expected, '  ' both.\n"
    "Exit status: 0 when every case passes, 1 when one fails or a file is invalid, 2 for usage\n"
    "errors.";

struct FileError {
  std::string message;
};

std::string where(const std::string& file, const YAML::Node& n) {
  return file + ":" + std::to_string(n.Mark().line + 1) + ":" + std::to_string(n.Mark().column + 1);
}

[[noreturn]] void fail(const std::string& file, const YAML::Node& n, const std::string& msg) {
  throw FileError{where(file, n) + ": error: " + msg};
}

std::string scalar(const std::string& file, const YAML::Node& n, const std::string& what) {
  if (!n.IsScalar()) fail(file, n, what + ": expected a string");
  return n.Scalar();
}

std::vector<std::string> strings(const std::string& file, const YAML::Node& n,
                                 const std::string& what) {
  std::vector<std::string> out;
  if (n.IsScalar()) return {n.Scalar()};
  if (!n.IsSequence()) fail(file, n, what + ": expected a list of strings");
  for (const auto& item : n) out.push_back(scalar(file, item, what));
  return out;
}

// `zone`: the case's time_zone ("" for none): timestamptz values become pgbust's UTC text.
ColumnValues row(const std::string& file, const YAML::Node& n, const std::string& what,
                 const std::string& zone) {
  if (!n.IsMap()) fail(file, n, what + ": expected a mapping of column values, e.g. {id: 5}");
  ColumnValues out;
  for (const auto& kv : n) {
    std::string col = scalar(file, kv.first, what);
    const YAML::Node& v = kv.second;
    if (v.IsNull()) {
      out.emplace_back(col, std::nullopt);
    } else if (v.IsScalar()) {
      std::string text = v.Scalar();
      if (v.Tag() == "?" && (text == "true" || text == "false")) text = text == "true" ? "t" : "f";
      if (!zone.empty()) {
        std::string err;
        if (auto utc = rules::timestamptz_as_utc(text, zone, err))
          text = *utc;
        else if (!err.empty())
          fail(file, v, what + ": column '" + col + "': " + err);
      }
      out.emplace_back(col, text);
    } else {
      fail(file, v, what + ": column '" + col + "' is not a scalar; expected its PostgreSQL text");
    }
  }
  return out;
}

struct Case {
  std::string name;
  int line = 0;
  Change change;
  std::string time_zone;  // as given ("" for none), for the failure report
  std::optional<std::vector<std::string>> expect;
  std::vector<std::string> includes, excludes;
};

std::vector<Case> read_cases(const std::string& file, const std::string& key_prefix,
                             bool prefix_given) {
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(file);
  } catch (const YAML::BadFile&) {
    throw FileError{file + ": error: cannot read test file"};
  } catch (const YAML::Exception& e) {
    throw FileError{file + ":" + std::to_string(e.mark.line + 1) + ":" +
                    std::to_string(e.mark.column + 1) + ": error: YAML syntax error: " + e.msg};
  }
  if (!doc.IsMap()) throw FileError{file + ": error: expected a mapping with 'tests'"};
  std::string prefix = key_prefix;
  for (const auto& kv : doc) {
    std::string k = kv.first.Scalar();
    if (k == "key_prefix") {
      if (!prefix_given) prefix = scalar(file, kv.second, "key_prefix");
    } else if (k != "tests") {
      fail(file, kv.first, "unknown key '" + k + "'; expected tests or key_prefix");
    }
  }
  YAML::Node tests = doc["tests"];
  if (!tests || !tests.IsSequence() || tests.size() == 0)
    throw FileError{file + ": error: expected 'tests', a list of cases"};
  static const std::vector<std::string> kKeys = {"name",   "table",     "op",       "identity",
                                                 "source", "time_zone", "key",      "old",
                                                 "new",    "expect",    "includes", "excludes"};
  std::vector<Case> cases;
  for (const auto& item : tests) {
    if (!item.IsMap()) fail(file, item, "a test case: expected a mapping (name, table, op, ...)");
    Case c;
    c.line = item.Mark().line + 1;
    c.change.key_prefix = prefix;
    for (const auto& kv : item) {
      std::string k = kv.first.Scalar();
      if (std::find(kKeys.begin(), kKeys.end(), k) == kKeys.end()) {
        std::string near = rules::suggest(k, kKeys);
        fail(file, kv.first,
             "unknown key '" + k + "' in a test case" +
                 (near.empty() ? "" : "; did you mean '" + near + "'?") +
                 " expected name, table, op, identity, source, time_zone, key, old, new, "
                 "expect, includes or excludes");
      }
    }
    auto required = [&](const char* key) {
      if (!item[key]) fail(file, item, std::string("a test case needs '") + key + "'");
      return scalar(file, item[key], key);
    };
    c.name = required("name");
    c.change.table = required("table");
    std::string op = required("op");
    auto parsed = parse_op(op);
    if (!parsed)
      fail(file, item["op"], "op '" + op + "': expected insert, update, delete or truncate");
    c.change.op = *parsed;
    if (item["identity"]) {
      std::string err, text = scalar(file, item["identity"], "identity");
      auto id = parse_identity(text, &err);
      if (!id) fail(file, item["identity"], "identity '" + text + "': " + err);
      c.change.identity = *id;
    }
    if (item["source"]) {
      std::string text = scalar(file, item["source"], "source");
      auto source = parse_source(text);
      if (!source)
        fail(file, item["source"], "source '" + text + "': expected logical, notify or poll");
      c.change.source = *source;
    }
    if (item["time_zone"]) {
      std::string err, text = scalar(file, item["time_zone"], "time_zone");
      if (!rules::check_time_zone(text, err)) fail(file, item["time_zone"], "time_zone: " + err);
      c.time_zone = text;
    }
    if (item["key"]) c.change.key = strings(file, item["key"], "key");
    if (item["old"]) c.change.old_row = row(file, item["old"], "old", c.time_zone);
    if (item["new"]) c.change.new_row = row(file, item["new"], "new", c.time_zone);
    if (item["expect"]) {
      c.expect = item["expect"].IsNull() ? std::vector<std::string>{}
                                         : strings(file, item["expect"], "expect");
    }
    if (item["includes"]) c.includes = strings(file, item["includes"], "includes");
    if (item["excludes"]) c.excludes = strings(file, item["excludes"], "excludes");
    if (!c.expect && c.includes.empty() && c.excludes.empty())
      fail(file, item, "test '" + c.name + "' checks nothing; give expect, includes or excludes");
    cases.push_back(std::move(c));
  }
  return cases;
}

// Whether an expected line stands for a sent command: equal, or "PUBLISH channel" ("XADD
// stream") for any message on that channel (entry on that stream).
bool same(const std::string& expected, const Command& got) {
  if (expected == got.line()) return true;
  return (got.verb == "PUBLISH" || got.verb == "XADD") &&
         expected == got.verb + " " + redis_cli_arg(got.key);
}

// A line diff (longest common subsequence): "- " expected only, "+ " sent only, "  " both.
std::vector<std::string> diff(const std::vector<std::string>& want,
                              const std::vector<Command>& got) {
  std::size_t n = want.size(), m = got.size();
  std::vector<std::vector<std::size_t>> lcs(n + 1, std::vector<std::size_t>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;)
    for (std::size_t j = m; j-- > 0;)
      lcs[i][j] =
          same(want[i], got[j]) ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  std::vector<std::string> out;
  std::size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && same(want[i], got[j])) {
      out.push_back("    " + want[i]);
      ++i;
      ++j;
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push_back("  - " + want[i++]);
    } else {
      out.push_back("  + " + got[j++].line());
    }
  }
  return out;
}

// The command that invalidates `key`: the same key, or a SCAN-DELETE pattern matching it.
const Command* covering(const std::vector<Command>& commands, const std::string& key) {
  for (const auto& c : commands)
    if (c.verb != "PUBLISH" && c.verb != "XADD" && c.key == key) return &c;
  for (const auto& c : commands)
    if (c.verb == "SCAN-DELETE" && rules::glob_match(c.key, key)) return &c;
  return nullptr;
}

// The failure report of one case; empty when it passes.
std::vector<std::string> run_case(const std::shared_ptr<const rules::RuleSet>& rules,
                                  const Case& c) {
  Explanation e;
  try {
    e = explain(rules, c.change);
  } catch (const BadChange& bad) {
    return {"  " + bad.message};
  }
  std::vector<std::string> report;
  if (c.expect) {
    bool equal = c.expect->size() == e.commands.size();
    for (std::size_t i = 0; equal && i < e.commands.size(); ++i)
      equal = same((*c.expect)[i], e.commands[i]);
    if (!equal) {
      report.push_back("  expect (- expected, + sent):");
      for (auto& l : diff(*c.expect, e.commands)) report.push_back(std::move(l));
    }
  }
  for (const auto& k : c.includes)
    if (!covering(e.commands, k)) report.push_back("  includes: " + k + " is not invalidated");
  for (const auto& k : c.excludes)
    if (const Command* by = covering(e.commands, k))
      report.push_back("  excludes: " + k + " is invalidated by " + by->line());
  if (!report.empty() && (c.change.source != ChangeSource::Logical || !c.time_zone.empty())) {
    static const char* kSource[] = {"logical", "notify", "poll"};
    std::string as = std::string("source ") + kSource[static_cast<int>(c.change.source)];
    if (!c.time_zone.empty()) as += ", values written in time zone " + c.time_zone;
    report.push_back("  (" + as + ")");
  }
  if (!report.empty() && !e.rules.empty()) {
    std::string fired;
    for (const auto& r : e.rules) fired += (fired.empty() ? "" : ", ") + r;
    report.push_back("  (rules that fired: " + fired + ")");
  } else if (!report.empty()) {
    report.push_back("  (no rule fired)");
  }
  for (const auto& l : e.lines)
    if (l.rfind("# widened", 0) == 0 && !report.empty()) report.push_back("  " + l);
  return report;
}

}  // namespace

int test(int argc, char** argv) {
  CommandLine cl("test", kAbout);
  std::vector<std::string> args;
  std::string key_prefix;
  bool quiet = false;
  cl.positional(&args);
  // clang-format off
  cl.add()
    ("key-prefix", po::value(&key_prefix), "prefix for every key (overrides the files' "
                                           "key_prefix), e.g. :1: (Django)")
    ("quiet,q", po::bool_switch(&quiet), "print failures and the summary only when one fails");
  // clang-format on
  if (auto exit = cl.parse(argc, argv)) return *exit;
  if (args.size() < 2) return cl.usage_error("give the rules (file or rules.d) and test files");
  auto loaded = rules::RuleSet::load(args[0]);
  if (!loaded.rules) {
    for (const auto& e : loaded.errors) std::cerr << e.str() << "\n";
    std::cerr << cl.prefix() << "the rules are invalid (see pgbust check)\n";
    return 1;
  }
  int total = 0, failed = 0, bad_files = 0;
  for (std::size_t f = 1; f < args.size(); ++f) {
    const std::string& file = args[f];
    std::vector<Case> cases;
    try {
      cases = read_cases(file, key_prefix, cl.set("key-prefix"));
    } catch (const FileError& e) {
      std::cerr << e.message << "\n";
      ++bad_files;
      continue;
    }
    for (const Case& c : cases) {
      ++total;
      auto report = run_case(loaded.rules, c);
      if (report.empty()) continue;
      ++failed;
      std::cout << file << ":" << c.line << ": test '" << c.name << "' failed\n";
      for (const auto& l : report) std::cout << l << "\n";
    }
  }
  if (bad_files > 0) {
    std::cerr << cl.prefix() << bad_files << " invalid test file" << (bad_files > 1 ? "s" : "")
              << "\n";
    return 1;
  }
  if (failed > 0) {
    std::cout << "pgbust test: " << failed << " of " << total << " test" << (total > 1 ? "s" : "")
              << " failed\n";
    return 1;
  }
  if (!quiet)
    std::cout << "pgbust test: " << total << " test" << (total > 1 ? "s" : "") << " passed\n";
  return 0;
}

}  // namespace pgbust::cli
