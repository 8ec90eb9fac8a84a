// The logical source's partition map: lookups' answers, and where each change goes.
#include "pgbust/sources/partition_map.hpp"

#include "pgbust/core/quote.hpp"

namespace pgbust::logical {

void PartitionMap::set_rule_tables(const std::vector<std::string>& tables) {
  std::set<std::string> now;
  for (const auto& t : tables) now.insert(t.find('.') == std::string::npos ? "public." + t : t);
  if (now == rule_tables_) return;
  rule_tables_ = std::move(now);
  all_.assign(rule_tables_.begin(), rule_tables_.end());
  ++epoch_;  // every answer depended on the rule tables
  // Which of them are partitioned is known at the next coverage check; until then every
  // relation that is not a rule table is looked up.
  partitioned_known_ = rule_tables_.empty();
  if (partitioned_known_) partitioned_.clear();
}

void PartitionMap::set_partitioned(const pgcatalog::Coverage& coverage) {
  std::vector<std::string> partitioned;
  std::set<std::string> checked;
  for (const auto& t : coverage.tables) {
    checked.insert(t.table);
    if (t.partitioned) partitioned.push_back(t.table);
  }
  if (partitioned != partitioned_) ++epoch_;  // e.g. a rule table swapped for a partitioned one
  partitioned_ = std::move(partitioned);
  // A check sent before a reload answers for the old rule tables.
  partitioned_known_ = checked == rule_tables_;
}

void PartitionMap::relation(const TableInfo* table, std::uint32_t oid) {
  relations_.erase(table);
  oids_[table] = oid;
}

void PartitionMap::forget() {
  relations_.clear();
  oids_.clear();
}

const TableInfo* PartitionMap::to_look_up(std::span<const ChangeEvent> events,
                                          TimePoint now) const {
  if (partitioned_known_ && partitioned_.empty()) return nullptr;
  for (const ChangeEvent& ev : events) {
    if (rule_tables_.count(ev.table->qualified()) != 0) continue;
    auto it = relations_.find(ev.table);
    if (it != relations_.end() && it->second.epoch == epoch_ && now < it->second.retry_at) continue;
    return ev.table;
  }
  return nullptr;
}

std::uint32_t PartitionMap::oid(const TableInfo* table) const {
  auto it = oids_.find(table);
  return it == oids_.end() ? 0 : it->second;
}

std::string PartitionMap::answer(const TableInfo* table, const PGresult* result,
                                 const std::string& error, TimePoint now,
                                 std::vector<std::string>& roots) {
  Leaf& leaf = relations_[table];
  leaf.epoch = epoch_;
  leaf.retry_at = kNever;
  roots.clear();
  std::string why;
  if (result == nullptr) {
    leaf.retry_at = now + std::chrono::seconds(30);
    why = "cannot look it up: " + error;
  } else {
    const auto chain = pgcatalog::read_partition_chain(result);
    bool same = false;
    for (std::size_t i = 0; i < chain.size(); ++i) {
      if (chain[i].changed == pgcatalog::ChainLink::Changed::After)
        why = quote_for_log(chain[i].table) + " changed in the catalog after it";
      same = same || chain[i].changed == pgcatalog::ChainLink::Changed::Same;
      if (i > 0 && rule_tables_.count(chain[i].table) != 0) roots.push_back(chain[i].table);
    }
    if (chain.empty())
      why = "it no longer exists";
    else if (why.empty() && roots.empty() && same)
      why = "that transaction changed it in the catalog";  // e.g. DETACH after writing
  }
  if (!why.empty())
    leaf.state = Leaf::State::Unknown;
  else if (roots.empty())
    leaf.state = Leaf::State::Other;  // not a rule table's partition: its changes go as they are
  else
    map(leaf, *table, roots);
  return why;
}

void PartitionMap::map(Leaf& leaf, const TableInfo& table, const std::vector<std::string>& roots) {
  leaf.state = Leaf::State::Mapped;
  leaf.n_roots = roots.size();
  while (leaf.roots.size() < roots.size()) leaf.roots.push_back(std::make_unique<TableInfo>());
  for (std::size_t i = 0; i < roots.size(); ++i) {
    TableInfo& m = *leaf.roots[i];
    const auto dot = roots[i].find('.');
    m.schema = roots[i].substr(0, dot);
    m.name = roots[i].substr(dot + 1);
    m.columns = table.columns;  // the leaf's order: the rules bind by name
    m.key = table.key;
    m.generation = ++generations_;
  }
}

PartitionMap::Route PartitionMap::route(const TableInfo* table) const {
  if (relations_.empty()) return {};
  auto it = relations_.find(table);
  if (it == relations_.end()) return {};
  const Leaf& leaf = it->second;
  switch (leaf.state) {
    case Leaf::State::Other:
      return {};
    case Leaf::State::Mapped:
      return {Route::Kind::Roots, std::span(leaf.roots.data(), leaf.n_roots)};
    case Leaf::State::Unknown:
      return {Route::Kind::Unknown, {}};
  }
  return {};
}

}  // namespace pgbust::logical
