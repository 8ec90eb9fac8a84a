// The documentation's single sources against the code they describe: a config key or rule key
// the parser accepts but the reference lacks fails here, and so does one the reference lists
// but the parser refuses; likewise the template filters and the commands' declarations.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../../rules/template.hpp"
#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/options.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/core/reference.hpp"
#include "pgbust/rules/reference.hpp"
#include "pgbust/rules/rules.hpp"

namespace {

using pgbust::KeyDoc;

// A YAML document (flow style) that sets every documented key to its example: "a.b[].c"
// becomes {a: {b: [{c: EXAMPLE}]}}.
struct Tree {
  std::string name;
  std::vector<Tree> children;  // a vector of the incomplete type is allowed; a pair is not
  std::string value;
  bool list = false;

  Tree& child(const std::string& n) {
    for (auto& t : children)
      if (t.name == n) return t;
    children.push_back(Tree{n, {}, {}, false});
    return children.back();
  }
  std::string yaml() const {
    if (children.empty()) return value;
    std::string out = "{";
    for (std::size_t i = 0; i < children.size(); ++i)
      out += (i ? ", " : "") + children[i].name + ": " + children[i].yaml();
    out += "}";
    return list ? "[" + out + "]" : out;
  }
};

std::string maximal(std::span<const KeyDoc> keys) {
  Tree root;
  for (const auto& k : keys) {
    Tree* t = &root;
    std::string path(k.path);
    std::size_t start = 0;
    while (true) {
      auto dot = path.find('.', start);
      std::string seg = path.substr(start, dot == std::string::npos ? dot : dot - start);
      bool list = seg.ends_with("[]");
      if (list) seg.resize(seg.size() - 2);
      t = &t->child(seg);
      t->list = t->list || list;
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    if (!k.example.empty()) t->value = std::string(k.example);
  }
  return root.yaml();
}

// Every documented path; with `under`, only the keys directly below it.
std::set<std::string> paths(std::span<const KeyDoc> keys, const char* under = nullptr) {
  std::set<std::string> out;
  for (const auto& k : keys) {
    std::string p(k.path);
    if (under != nullptr) {
      if (!p.starts_with(under)) continue;
      p = p.substr(std::string_view(under).size());
      if (p.find('.') != std::string::npos) continue;  // deeper
    }
    out.insert(p);
  }
  return out;
}

// "... expected a, b or c" -> {a, b, c}
std::set<std::string> expected_list(const std::string& message) {
  auto at = message.rfind("expected ");
  REQUIRE_MESSAGE(at != std::string::npos, message);
  std::string list = message.substr(at + 9);
  std::set<std::string> out;
  std::size_t start = 0;
  while (start < list.size()) {
    auto comma = list.find(", ", start), orr = list.find(" or ", start);
    auto end = std::min(comma, orr);
    out.insert(list.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) break;
    start = end + (end == comma ? 2 : 4);
  }
  return out;
}

}  // namespace

TEST_CASE("every pgbust.yaml key the parser accepts is documented, and only those") {
  std::string doc = maximal(pgbust::config::keys());
  INFO("the document with every documented key: " << doc);
  try {
    pgbust::config::parse(doc, "maximal.yaml");
  } catch (const pgbust::config::ConfigError& e) {
    FAIL_CHECK("a documented key (or its example) is not accepted:\n" << e.what());
  }
  auto accepted = pgbust::config::accepted_keys(doc);
  std::set<std::string> documented = paths(pgbust::config::keys());
  for (const auto& k : accepted)
    CHECK_MESSAGE(documented.count(k), "accepted but undocumented: " << k);
  std::set<std::string> accepted_set(accepted.begin(), accepted.end());
  for (const auto& k : documented)
    CHECK_MESSAGE(accepted_set.count(k), "documented but not accepted: " << k);
  for (const auto& k : pgbust::config::keys()) {
    CHECK_MESSAGE(!k.type.empty(), k.path);
    CHECK_MESSAGE(k.doc.ends_with("."), "one sentence, with its period: " << k.path);
  }
}

TEST_CASE("every rules-file key the loader accepts is documented, and only those") {
  std::string doc = maximal(pgbust::rules::keys());
  INFO("the rules file with every documented key: " << doc);
  auto loaded = pgbust::rules::RuleSet::parse(doc, "maximal.yaml");
  for (const auto& e : loaded.errors) FAIL_CHECK("not accepted: " << e.str());

  struct Level {
    const char* yaml;  // with an unknown key at that level
    const char* under;
  };
  const Level levels[] = {
      {"version: 1\nrules: []\nzz_unknown: 1\n", ""},
      {"version: 1\nrules:\n  - {name: a, table: t, delete: [k], zz_unknown: 1}\n", "rules[]."},
      {"version: 1\nrules:\n  - {name: a, table: t, delete: [k], fallback: {zz_unknown: 1}}\n",
       "rules[].fallback."},
  };
  for (const auto& l : levels) {
    CAPTURE(l.yaml);
    auto r = pgbust::rules::RuleSet::parse(l.yaml, "unknown.yaml");
    std::string message;
    for (const auto& e : r.errors)
      if (e.message.find("zz_unknown") != std::string::npos) message = e.message;
    REQUIRE_MESSAGE(!message.empty(), "the loader did not refuse an unknown key");
    auto expected = expected_list(message), documented = paths(pgbust::rules::keys(), l.under);
    for (const auto& k : expected)
      CHECK_MESSAGE(documented.count(k),
                    "accepted but undocumented: " << std::string(l.under) << k);
    for (const auto& k : documented)
      CHECK_MESSAGE(expected.count(k),
                    "documented but not accepted: " << std::string(l.under) << k);
  }
}

TEST_CASE("every template filter is documented, and only those") {
  std::set<std::string> accepted, documented;
  for (auto n : pgbust::rules::detail::filter_names()) accepted.insert(std::string(n));
  for (const auto& f : pgbust::rules::filters()) {
    documented.insert(std::string(f.name));
    CHECK_MESSAGE(f.usage.starts_with(f.name), f.usage);
  }
  CHECK(accepted == documented);
}

TEST_CASE("describing runs no command and reads every command's options") {
  pgbust::cli::Describing d;
  for (const auto& c : pgbust::cli::commands()) {
    CAPTURE(c.name);
    std::string name = c.name;
    char* argv[] = {name.data(), nullptr};
    CHECK(c.main(1, argv) == 0);  // `run` with no flags would be a usage error (2)
    REQUIRE(!d.commands.empty());
    const auto& info = d.commands.back();
    CHECK(info.name == c.name);
    CHECK(info.about.starts_with("pgbust " + info.name + ": "));
    REQUIRE(!info.options.empty());
    CHECK(info.options.front().name == "help");
    for (const auto& o : info.options) CHECK_MESSAGE(!o.doc.empty(), o.name);
  }
  CHECK(d.commands.size() == pgbust::cli::commands().size());
}
