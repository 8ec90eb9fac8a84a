// The logical source's publication coverage, apart from its connections: which rule tables
// the publication does not carry (the verdict is degraded while any is missing), and which
// must widen once because changes may have been left out of the stream (a table dropped from
// the publication and added back, a re-created publication, a table swapped under its name).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pgbust/pg/catalog.hpp"

namespace pgbust::logical {

class CoverageTracker {
 public:
  struct Uncovered {
    std::string table;  // "schema.table"
    std::string fix;    // the SQL that covers it again
  };
  struct Changes {
    std::vector<Uncovered> lost;      // not covered now, covered (or unknown) before: log once
    std::vector<std::string> widen;   // covered again, or under another identity: widen once
    std::vector<std::string> gained;  // covered again (for the log line)
  };

  // One check's result. The first observation of a covered table is the baseline; a table
  // that does not exist (a rule naming it, the middle of a swap) is not covered.
  Changes observe(const pgcatalog::Coverage& coverage, const std::string& publication);
  // The rule tables changed (reload): forget tables no longer named.
  void retain(const std::vector<std::string>& tables);

  // Widenings: taken to be delivered, then applied.
  std::vector<std::string> take_pending();
  bool has_pending() const { return !pending_.empty(); }
  void delivered() { in_flight_ = true; }
  // The delivered widenings are applied: true when there were any.
  bool applied();
  bool widening_open() const { return !pending_.empty() || in_flight_; }

  const std::vector<Uncovered>& uncovered() const { return uncovered_; }
  std::vector<std::string> uncovered_tables() const;
  // Non-empty while a table is uncovered or its widening is not applied (SourceStatus).
  std::string degraded() const;

 private:
  struct Seen {
    bool exists = false;
    bool covered = false;
    std::string identity;
  };
  std::map<std::string, Seen> seen_;
  std::vector<Uncovered> uncovered_;
  std::set<std::string> pending_;  // to widen, not yet delivered
  bool in_flight_ = false;         // delivered, not yet applied
};

}  // namespace pgbust::logical
