// The logical source's partition map (issue 10, part 9): which relations are looked up before
// their changes apply, and where a leaf's changes go after the answer, apart from any
// connection (the answers are PGresults made here).
#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <memory>

#include "pgbust/sources/partition_map.hpp"

using namespace pgbust;
using logical::PartitionMap;

namespace {

struct ResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultFree>;

// A kPartitionChainSql answer: (table, 'o' | 's' | 'n') rows, the relation first.
Result chain(std::vector<std::pair<std::string, std::string>> rows) {
  Result r(PQmakeEmptyPGresult(nullptr, PGRES_TUPLES_OK));
  PGresAttDesc cols[2] = {};
  cols[0].name = const_cast<char*>("table");
  cols[1].name = const_cast<char*>("changed");
  REQUIRE(PQsetResultAttrs(r.get(), 2, cols) != 0);
  for (int i = 0; i < static_cast<int>(rows.size()); ++i) {
    auto& [table, changed] = rows[static_cast<std::size_t>(i)];
    REQUIRE(PQsetvalue(r.get(), i, 0, table.data(), static_cast<int>(table.size())) != 0);
    REQUIRE(PQsetvalue(r.get(), i, 1, changed.data(), static_cast<int>(changed.size())) != 0);
  }
  return r;
}

pgcatalog::Coverage coverage(std::vector<std::pair<std::string, bool>> tables) {
  pgcatalog::Coverage c{true, "pgbust", {}};
  for (auto& [name, partitioned] : tables) {
    pgcatalog::TableCoverage t;
    t.table = name;
    t.exists = t.covered = true;
    t.partitioned = partitioned;
    c.tables.push_back(t);
  }
  return c;
}

TableInfo table(std::string schema, std::string name, std::vector<std::string> columns) {
  TableInfo t;
  t.schema = std::move(schema);
  t.name = std::move(name);
  t.key.assign(columns.size(), false);
  t.columns = std::move(columns);
  t.generation = 1;
  return t;
}

ChangeEvent change(const TableInfo& t) {
  ChangeEvent e;
  e.table = &t;
  return e;
}

}  // namespace

TEST_CASE("partition map: leaves are looked up once, then go under their rule tables") {
  PartitionMap m;
  m.set_rule_tables({"events", "app.other"});
  const TableInfo leaf = table("public", "events_2025", {"grp", "day", "id"});
  const TableInfo rule = table("public", "events", {"id", "day", "grp"});
  const ChangeEvent ev[] = {change(rule), change(leaf)};
  const auto now = Clock::now();

  // Until a coverage check says which rule tables are partitioned, every other relation is
  // looked up; a rule table never is.
  m.relation(&leaf, 1234);
  CHECK(m.to_look_up(std::span(ev, 1), now) == nullptr);
  CHECK(m.to_look_up(ev, now) == &leaf);
  CHECK(m.oid(&leaf) == 1234);

  m.set_partitioned(coverage({{"public.events", true}, {"app.other", false}}));
  REQUIRE(m.to_look_up(ev, now) == &leaf);
  std::vector<std::string> roots;
  auto r = chain({{"public.events_2025", "o"}, {"public.events", "o"}});
  CHECK(m.answer(&leaf, r.get(), "", now, roots).empty());
  CHECK(roots == std::vector<std::string>{"public.events"});
  CHECK(m.to_look_up(ev, now) == nullptr);  // answered

  // Under the root's name, with the leaf's column order (rules bind by name).
  auto route = m.route(&leaf);
  REQUIRE(route.kind == PartitionMap::Route::Kind::Roots);
  REQUIRE(route.roots.size() == 1);
  CHECK(route.roots[0]->qualified() == "public.events");
  CHECK(route.roots[0]->columns == leaf.columns);
  const auto generation = route.roots[0]->generation;
  CHECK(m.route(&rule).kind == PartitionMap::Route::Kind::AsIs);

  // A Relation message (DDL, a new session) asks again; the layout is re-bound.
  m.relation(&leaf, 1234);
  CHECK(m.to_look_up(ev, now) == &leaf);
  CHECK(m.answer(&leaf, r.get(), "", now, roots).empty());
  CHECK(m.route(&leaf).roots[0]->generation > generation);

  // A reload that changes the rule tables asks again too; until the next check says which
  // are partitioned, all of them are candidates for a widening.
  m.set_rule_tables({"events", "app.other", "app.more"});
  CHECK(m.to_look_up(ev, now) == &leaf);
  CHECK(m.partitioned() == std::vector<std::string>{"app.more", "app.other", "public.events"});
  m.set_partitioned(coverage({{"public.events", true}, {"app.other", false}}));  // an old check
  CHECK(m.partitioned().size() == 3);
  m.set_partitioned(coverage({{"public.events", true}, {"app.other", false}, {"app.more", false}}));
  CHECK(m.partitioned() == std::vector<std::string>{"public.events"});
}

TEST_CASE("partition map: what cannot be attributed widens, what is nobody's goes as it is") {
  PartitionMap m;
  m.set_rule_tables({"events"});
  m.set_partitioned(coverage({{"public.events", true}}));
  const TableInfo leaf = table("public", "events_2029", {"id", "day", "grp"});
  const ChangeEvent ev[] = {change(leaf)};
  const auto now = Clock::now();
  std::vector<std::string> roots;

  // Detached after the transaction wrote it: the catalog no longer says.
  auto detached = chain({{"public.events_2029", "n"}});
  CHECK(m.answer(&leaf, detached.get(), "", now, roots).find("changed in the catalog after") !=
        std::string::npos);
  CHECK(m.route(&leaf).kind == PartitionMap::Route::Kind::Unknown);
  // Detached by the transaction that wrote it.
  auto same = chain({{"public.events_2029", "s"}});
  CHECK_FALSE(m.answer(&leaf, same.get(), "", now, roots).empty());
  // Dropped since.
  auto gone = chain({});
  CHECK(m.answer(&leaf, gone.get(), "", now, roots) == "it no longer exists");
  CHECK(m.route(&leaf).kind == PartitionMap::Route::Kind::Unknown);
  CHECK(m.to_look_up(ev, now) == nullptr);  // until its next Relation message

  // A failed lookup: unknown, and asked again later.
  CHECK(m.answer(&leaf, nullptr, "timed out", now, roots) == "cannot look it up: timed out");
  CHECK(m.to_look_up(ev, now) == nullptr);
  CHECK(m.to_look_up(ev, now + std::chrono::minutes(1)) == &leaf);

  // Created by the transaction that wrote it, under a rule table: mapped.
  auto created = chain({{"public.events_2029", "s"}, {"public.events", "o"}});
  CHECK(m.answer(&leaf, created.get(), "", now, roots).empty());
  CHECK(m.route(&leaf).kind == PartitionMap::Route::Kind::Roots);

  // A table of nobody's (FOR ALL TABLES): as it is.
  const TableInfo other = table("public", "other", {"id"});
  auto plain = chain({{"public.other", "o"}});
  CHECK(m.answer(&other, plain.get(), "", now, roots).empty());
  CHECK(roots.empty());
  CHECK(m.route(&other).kind == PartitionMap::Route::Kind::AsIs);

  // No partitioned rule table: nothing is looked up.
  m.set_partitioned(coverage({{"public.events", false}}));
  const TableInfo fresh = table("public", "fresh", {"id"});
  const ChangeEvent ev2[] = {change(fresh)};
  CHECK(m.to_look_up(ev2, now) == nullptr);
}
