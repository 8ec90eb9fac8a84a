// The logical source's publication coverage (issue 10, part 3): what each check's result
// means for the verdict, the log and the widenings, apart from any connection.
#include <doctest/doctest.h>

#include "pgbust/sources/publication_coverage.hpp"

using namespace pgbust;
using logical::CoverageTracker;

namespace {

pgcatalog::TableCoverage table(std::string name, bool covered, std::string identity = "rel 1 pub 9",
                               bool exists = true) {
  return {std::move(name), exists, covered, std::move(identity), "\"public\".\"items\""};
}

pgcatalog::Coverage cov(std::vector<pgcatalog::TableCoverage> tables, bool pub = true) {
  return {pub, "pgbust", std::move(tables)};
}

}  // namespace

TEST_CASE("covered from the start: no widening, healthy") {
  CoverageTracker t;
  auto ch = t.observe(cov({table("public.items", true)}), "pgbust");
  CHECK(ch.lost.empty());
  CHECK(ch.widen.empty());
  CHECK(t.degraded().empty());
  ch = t.observe(cov({table("public.items", true)}), "pgbust");
  CHECK(ch.widen.empty());
  CHECK(!t.widening_open());
}

TEST_CASE("dropped from the publication, then added back: logged once, degraded, widens once") {
  CoverageTracker t;
  t.observe(cov({table("public.items", true)}), "pgbust");
  auto ch = t.observe(cov({table("public.items", false)}), "pgbust");
  REQUIRE(ch.lost.size() == 1);
  CHECK(ch.lost[0].fix == "ALTER PUBLICATION pgbust ADD TABLE \"public\".\"items\";");
  CHECK(t.degraded().find("ALTER PUBLICATION pgbust ADD TABLE") != std::string::npos);
  CHECK(t.uncovered_tables() == std::vector<std::string>{"public.items"});
  // Still uncovered: not logged again.
  CHECK(t.observe(cov({table("public.items", false)}), "pgbust").lost.empty());
  // Covered again (a new pg_publication_rel entry): widen once, degraded until applied.
  ch = t.observe(cov({table("public.items", true, "rel 1 pub 9 entry 2")}), "pgbust");
  CHECK(ch.widen == std::vector<std::string>{"public.items"});
  CHECK(ch.gained == std::vector<std::string>{"public.items"});
  CHECK(t.uncovered().empty());
  CHECK(t.degraded() == "publication gap: widening not yet applied");
  CHECK(t.take_pending() == std::vector<std::string>{"public.items"});
  t.delivered();
  CHECK(
      t.observe(cov({table("public.items", true, "rel 1 pub 9 entry 2")}), "pgbust").widen.empty());
  CHECK(!t.degraded().empty());
  CHECK(t.applied());
  CHECK(t.degraded().empty());
}

TEST_CASE("another identity between two checks that both see it covered widens once") {
  CoverageTracker t;
  t.observe(cov({table("public.items", true, "rel 1 pub 9 entry 3")}), "pgbust");
  // Dropped and added back (or the publication re-created) between two checks.
  auto ch = t.observe(cov({table("public.items", true, "rel 1 pub 10 entry 4")}), "pgbust");
  CHECK(ch.lost.empty());
  CHECK(ch.widen == std::vector<std::string>{"public.items"});
  CHECK(ch.gained.empty());
  // A table swap: another relation under the name.
  t.take_pending();
  t.delivered();
  t.applied();
  ch = t.observe(cov({table("public.items", true, "rel 77 pub 10 entry 5")}), "pgbust");
  CHECK(ch.widen == std::vector<std::string>{"public.items"});
}

TEST_CASE("a dropped publication: every table uncovered, the fix creates it") {
  CoverageTracker t;
  t.observe(cov({table("public.items", true)}), "pgbust");
  auto ch = t.observe(cov({table("public.items", false)}, false), "pgbust");
  REQUIRE(ch.lost.size() == 1);
  CHECK(ch.lost[0].fix.rfind("CREATE PUBLICATION \"pgbust\" FOR TABLE \"public\".\"items\"", 0) ==
        0);
}

TEST_CASE("a table that does not exist is uncovered; a reload forgets tables no rule names") {
  CoverageTracker t;
  auto ch = t.observe(cov({table("app.missing", false, "", false)}), "pgbust");
  REQUIRE(ch.lost.size() == 1);
  CHECK(ch.lost[0].fix.find("no such table") != std::string::npos);
  t.retain({"public.items"});
  CHECK(t.uncovered().empty());
  CHECK(t.degraded().empty());
}

TEST_CASE("first seen uncovered (at start), covered later: widens once") {
  CoverageTracker t;
  CHECK(t.observe(cov({table("public.items", false)}), "pgbust").lost.size() == 1);
  CHECK(t.observe(cov({table("public.items", true)}), "pgbust").widen.size() == 1);
}
