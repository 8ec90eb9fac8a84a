// AckLedger: each source confirmed in commit order, only up to its first transaction whose
// batch (second deletes included) has not been applied (promise 2).
#include "pgbust/pipeline/ack_ledger.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "pipeline_fakes.hpp"

using pgbust::AckLedger;
using pgbust::Position;
using pgbust::test_pipeline::FakeSource;

namespace {

// One step of a ledger script: add a transaction (source A or B, position, group), mark a
// group applied, or settle.
struct Step {
  enum Kind { Add, Applied, Settle } kind;
  char source = 0;
  Position position = 0;
  AckLedger::Group group = 0;
};
Step add(char source, Position position, AckLedger::Group group) {
  return {Step::Add, source, position, group};
}
Step applied(AckLedger::Group group) {
  return {Step::Applied, 0, 0, group};
}
Step settle() {
  return {Step::Settle};
}

// Runs a script; returns what each settle confirmed ("A3 B5", sources in name order),
// joined by " | ".
std::string run(const std::vector<Step>& steps, AckLedger& ledger) {
  std::map<char, FakeSource> sources;
  sources.emplace('A', FakeSource("A"));
  sources.emplace('B', FakeSource("B"));
  std::string out;
  for (const Step& s : steps) {
    switch (s.kind) {
      case Step::Add:
        ledger.add(sources.at(s.source), s.position, 0, s.group);
        break;
      case Step::Applied:
        ledger.applied(s.group);
        break;
      case Step::Settle: {
        std::map<char, std::size_t> before;
        for (auto& [name, src] : sources) before[name] = src.confirmed.size();
        ledger.settle(nullptr);
        std::string line;
        for (auto& [name, src] : sources) {
          REQUIRE(src.confirmed.size() - before[name] <= 1);  // one confirm per source
          if (src.confirmed.size() > before[name])
            line += (line.empty() ? "" : " ") + std::string(1, name) +
                    std::to_string(src.confirmed.back());
        }
        out += (out.empty() ? "" : " | ") + (line.empty() ? "-" : line);
        break;
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("AckLedger confirms each source in commit order up to its first unapplied record") {
  struct Case {
    const char* name;
    std::vector<Step> steps;
    std::string confirms;
    std::size_t left;  // transactions still unconfirmed at the end
  };
  const Case cases[] = {
      {"empty transactions confirm at once, the last position once",
       {add('A', 1, 0), add('A', 2, 0), settle(), settle()},
       "A2 | -",
       0},
      {"a batch completing holds nothing behind it back",
       {add('A', 1, 1), settle(), applied(1), settle()},
       "- | A1",
       0},
      {"out-of-order completion across batches: the later batch waits for the earlier",
       {add('A', 1, 1), add('A', 2, 2), applied(2), settle(), applied(1), settle()},
       "- | A2",
       0},
      {"a transaction with nothing to apply waits behind an unapplied one",
       {add('A', 1, 0), add('A', 2, 1), add('A', 3, 0), settle(), applied(1), settle()},
       "A1 | A3",
       0},
      {"second deletes pending (group not applied) hold confirmation, later ones too",
       {add('A', 1, 1), add('A', 2, 2), applied(2), add('A', 3, 0), settle(), settle()},
       "- | -",
       3},
      {"several transactions in one batch confirm together at its last position",
       {add('A', 1, 1), add('A', 2, 1), add('A', 3, 1), applied(1), settle()},
       "A3",
       0},
      {"several sources confirm independently",
       {add('A', 1, 1), add('B', 7, 2), add('B', 8, 0), applied(2), settle(), applied(1), settle()},
       "B8 | A1",
       0},
      {"one batch spanning two sources confirms both",
       {add('A', 1, 1), add('B', 5, 1), add('A', 2, 0), settle(), applied(1), settle()},
       "- | A2 B5",
       0},
      {"a source with an unapplied record does not hold another source back",
       {add('A', 1, 1), add('B', 1, 0), add('B', 2, 0), settle()},
       "B2",
       1},
      {"marking an unknown or already applied group changes nothing",
       {add('A', 1, 1), applied(9), settle(), applied(1), applied(1), settle()},
       "- | A1",
       0},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    AckLedger ledger;
    CHECK(run(c.steps, ledger) == c.confirms);
    CHECK(ledger.transactions() == c.left);
    CHECK(ledger.empty() == (c.left == 0));
  }
}

TEST_CASE("AckLedger reports every settled record, in commit order, with its data") {
  AckLedger ledger;
  FakeSource a("A"), b("B");
  auto g = ledger.open_group();
  CHECK(g != AckLedger::kNothing);
  auto h = ledger.open_group();
  CHECK(h != g);
  ledger.add(a, 10, 1000, g);
  ledger.add(a, 11, 2000, AckLedger::kNothing);  // joins 10: confirmable when it is
  ledger.add(b, 5, 500, AckLedger::kNothing);
  ledger.add(a, 12, 3000, h);
  CHECK(ledger.records() == 3);
  CHECK(ledger.transactions() == 4);
  struct Seen {
    Position position;
    std::int64_t first, last;
    std::uint64_t transactions;
    bool operator==(const Seen&) const = default;
  };
  std::vector<Seen> seen;
  auto each = [&](const AckLedger::Record& r) {
    seen.push_back({r.position, r.first_commit_us, r.commit_time_us, r.transactions});
  };
  ledger.settle(each);
  CHECK(seen == std::vector<Seen>{{5, 500, 500, 1}});
  CHECK(a.confirmed.empty());
  seen.clear();
  ledger.applied(g);
  ledger.settle(each);
  CHECK(seen == std::vector<Seen>{{11, 1000, 2000, 2}});
  CHECK(a.confirmed == std::vector<Position>{11});
  seen.clear();
  ledger.applied(h);
  ledger.settle(each);
  CHECK(seen == std::vector<Seen>{{12, 3000, 3000, 1}});
  CHECK(ledger.empty());
}

TEST_CASE("AckLedger: runs that become confirmable together share one record") {
  struct Case {
    const char* name;
    std::vector<Step> steps;
    std::size_t records;  // at the end
    std::string confirms;
  };
  const Case cases[] = {
      {"transactions with nothing to apply behind an unapplied one",
       {add('A', 1, 1), add('A', 2, 0), add('A', 3, 0), add('A', 4, 0)},
       1,
       ""},
      {"transactions of the same batch",
       {add('A', 1, 1), add('A', 2, 1), add('A', 3, 0), add('A', 4, 1)},
       1,
       ""},
      {"a later batch: its own record until it is applied, then it joins the one before",
       {add('A', 1, 1), add('A', 2, 2), add('A', 3, 0), applied(2), settle()},
       1,
       "-"},
      {"a batch spanning sources joins in each source",
       {add('A', 1, 1), add('B', 1, 1), add('A', 2, 2), add('B', 2, 2), add('B', 3, 0), applied(2),
        settle(), applied(1), settle()},
       0,
       "- | A2 B3"},
      {"an applied head keeps its record until settled; later ones join it",
       {add('A', 1, 1), add('A', 2, 2), applied(1), applied(2)},
       1,
       ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    AckLedger ledger;
    CHECK(run(c.steps, ledger) == c.confirms);
    CHECK(ledger.records() == c.records);
  }
}
