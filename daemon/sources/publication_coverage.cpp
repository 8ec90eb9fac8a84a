// Publication coverage: what each check changed, and what the verdict says meanwhile.
#include "pgbust/sources/publication_coverage.hpp"

#include <algorithm>

#include "pgbust/pg/async.hpp"

namespace pgbust::logical {

namespace {

std::string fix_for(const pgcatalog::Coverage& c, const pgcatalog::TableCoverage& t,
                    const std::string& publication) {
  if (!t.exists)
    return "no such table; once it exists: ALTER PUBLICATION " + c.publication_sql + " ADD TABLE " +
           t.sql_name + ";";
  if (!c.publication_exists)
    return "CREATE PUBLICATION " + pg::quote_ident(publication) + " FOR TABLE " + t.sql_name +
           " WITH (publish_via_partition_root = true);";
  return "ALTER PUBLICATION " + c.publication_sql + " ADD TABLE " + t.sql_name + ";";
}

}  // namespace

CoverageTracker::Changes CoverageTracker::observe(const pgcatalog::Coverage& coverage,
                                                  const std::string& publication) {
  Changes out;
  std::vector<Uncovered> uncovered;
  for (const auto& t : coverage.tables) {
    auto it = seen_.find(t.table);
    const bool known = it != seen_.end();
    Seen now{t.exists, t.exists && t.covered, t.identity};
    if (!now.covered) {
      Uncovered u{t.table, fix_for(coverage, t, publication)};
      if (!known || it->second.covered || it->second.exists != now.exists) out.lost.push_back(u);
      uncovered.push_back(std::move(u));
    } else if (known && (!it->second.covered || it->second.identity != now.identity)) {
      out.widen.push_back(t.table);
      if (!it->second.covered) out.gained.push_back(t.table);
      pending_.insert(t.table);
    }
    // Not covered: keep the identity last covered, to compare with when it is again.
    if (known && !now.covered) now.identity = it->second.identity;
    seen_[t.table] = now;
  }
  uncovered_ = std::move(uncovered);
  return out;
}

void CoverageTracker::retain(const std::vector<std::string>& tables) {
  auto named = [&](const std::string& t) {
    return std::find(tables.begin(), tables.end(), t) != tables.end();
  };
  std::erase_if(seen_, [&](const auto& kv) { return !named(kv.first); });
  std::erase_if(pending_, [&](const std::string& t) { return !named(t); });
  std::erase_if(uncovered_, [&](const Uncovered& u) { return !named(u.table); });
}

std::vector<std::string> CoverageTracker::take_pending() {
  std::vector<std::string> out(pending_.begin(), pending_.end());
  pending_.clear();
  return out;
}

bool CoverageTracker::applied() {
  const bool was = in_flight_;
  in_flight_ = false;
  return was;
}

std::vector<std::string> CoverageTracker::uncovered_tables() const {
  std::vector<std::string> out;
  for (const auto& u : uncovered_) out.push_back(u.table);
  return out;
}

std::string CoverageTracker::degraded() const {
  if (!uncovered_.empty()) {
    std::string out = "publication does not cover ";
    for (std::size_t i = 0; i < uncovered_.size(); ++i) {
      if (i > 0) out += ", ";
      if (i == 3) {
        out += std::to_string(uncovered_.size() - 3) + " more";
        break;
      }
      out += uncovered_[i].table;
    }
    return out + " (" + uncovered_.front().fix + ")";
  }
  if (widening_open()) return "publication gap: widening not yet applied";
  return {};
}

}  // namespace pgbust::logical
