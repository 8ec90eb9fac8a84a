// Which rule tables the logical source serves: only those it must find in its publication
// (the NOTIFY and poll sources' tables never count as uncovered there).
#include <doctest/doctest.h>

#include "pgbust/cli/build_sources.hpp"

using namespace pgbust;

namespace {

const char* kRules = R"(version: 1
rules:
  - {name: a, table: orders, delete: ["o:${id}"]}
  - {name: b, table: app.users, delete: ["u:${id}"]}
  - {name: c, table: events, delete: ["e:${id}"]}
)";

std::vector<std::string> tables(const std::string& sources) {
  auto rules = rules::RuleSet::parse(kRules, "rules.yaml");
  REQUIRE(rules.errors.empty());
  auto cfg =
      config::parse("postgres: {conninfo: \"dbname=app\"}\nrules: rules.yaml\nsources:\n" + sources,
                    "pgbust.yaml");
  return cli::logical_tables(cfg, *rules.rules);
}

}  // namespace

TEST_CASE("logical_tables: the rule tables no other source serves") {
  CHECK(tables("  logical: {}\n") ==
        std::vector<std::string>{"app.users", "public.events", "public.orders"});
  CHECK(tables("  logical: {}\n  poll: {tables: [{table: events, watermark: [id]}]}\n") ==
        std::vector<std::string>{"app.users", "public.orders"});
  CHECK(tables("  logical: {}\n  notify: {tables: [app.users]}\n") ==
        std::vector<std::string>{"public.events", "public.orders"});
  // NOTIFY without a list serves every rule table.
  CHECK(tables("  logical: {}\n  notify: {}\n").empty());
}
