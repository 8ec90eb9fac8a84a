// The logical source's partition map, apart from its connections: which rule tables a leaf
// partition's changes belong to when the publication sends them under the leaf's own name
// (no publish_via_partition_root), as lookups on the side connection answered, and which
// relations must be looked up before their next change is applied.
//
// A publication made without publish_via_partition_root (FOR TABLE on a partitioned table,
// FOR ALL TABLES, FOR TABLES IN SCHEMA) sends each change under its leaf partition's
// Relation message: the leaf's OID, schema, name and columns (the same names as the root's,
// perhaps in another order). pgbust presents such a change under the name of every rule
// table above the leaf, with the leaf's own column list, so the rules bind by column name.
//
// Which tables are above a leaf is a catalog question, and the catalog answers as of now,
// not as of the change. So pgbust asks it much as PostgreSQL's own subscriber maps a
// remote relation to a local one: on the first change of a relation it has no answer for
// (in this session, since the relation's last Relation message, i.e. its last DDL, and
// since the rule tables last changed), the stream stops at that message while the side
// connection looks the relation up by OID; the message is decoded again and applied once
// the answer is in. Nothing later is read meanwhile, and nothing past the transaction is
// confirmed. The answer also says whether the pg_class row of the relation or of an
// ancestor was written after the transaction being decoded (an ATTACH, DETACH or DROP
// since, seen when pgbust lags): then, and when the relation no longer exists, nobody can
// say which table its changes belonged to, and each transaction that changes it widens
// every partitioned rule table once (UnknownPartition, counted) until its next Relation
// message; a lookup that fails or times out does the same until it is retried. A relation
// a rule names is taken as itself (as with publish_via_partition_root, where a rule on a
// partition sees nothing either). Without a partitioned rule table nothing is looked up.
// The xid test compares assignment order, which DDL follows because it takes a lock the
// writer held until its commit; the one way past it is a DETACH in a transaction that got
// its xid (by writing elsewhere) before the writer did, which is read as the catalog says
// now.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "pgbust/core/change.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/pg/catalog.hpp"

namespace pgbust::logical {

class PartitionMap {
 public:
  // The rule tables ("schema.table", or "table" in public); answers for others are dropped.
  void set_rule_tables(const std::vector<std::string>& tables);
  // A coverage check's result: which rule tables are partitioned.
  void set_partitioned(const pgcatalog::Coverage& coverage);
  // The rule tables to widen for a change that cannot be attributed: the partitioned ones as
  // the last check for the current rule tables saw them, or all of them before that check.
  const std::vector<std::string>& partitioned() const {
    return partitioned_known_ ? partitioned_ : all_;
  }

  // A Relation message: its layout or identity may have changed, ask again.
  void relation(const TableInfo* table, std::uint32_t oid);
  // A new session: every Relation message comes again.
  void forget();

  // The first relation `events` change that must be looked up before they are applied, or
  // null. `oid` is its OID (0 if no Relation message named it).
  const TableInfo* to_look_up(std::span<const ChangeEvent> events, TimePoint now) const;
  std::uint32_t oid(const TableInfo* table) const;

  // A lookup's answer (pgcatalog::kPartitionChainSql for the transaction being decoded), or
  // null and what went wrong. Returns why the relation's changes cannot be attributed (empty
  // when they can: to the rule tables in `roots`, or to none).
  std::string answer(const TableInfo* table, const PGresult* result, const std::string& error,
                     TimePoint now, std::vector<std::string>& roots);

  // Where a change of `table` goes.
  struct Route {
    enum class Kind : std::uint8_t { AsIs, Roots, Unknown } kind = Kind::AsIs;
    std::span<const std::unique_ptr<TableInfo>> roots;  // Roots: the leaf under each
  };
  Route route(const TableInfo* table) const;

 private:
  struct Leaf {  // what a lookup said of a relation
    enum class State : std::uint8_t { Other, Mapped, Unknown } state = State::Other;
    std::uint64_t epoch = 0;      // answered for these rule tables (epoch_)
    TimePoint retry_at = kNever;  // a failed lookup: ask again from then
    // Mapped: the leaf's layout under each rule table above it.
    std::vector<std::unique_ptr<TableInfo>> roots;
    std::size_t n_roots = 0;
  };
  void map(Leaf& leaf, const TableInfo& table, const std::vector<std::string>& roots);

  std::unordered_map<const TableInfo*, Leaf> relations_;  // by the decoder's layout
  std::unordered_map<const TableInfo*, std::uint32_t> oids_;
  std::set<std::string> rule_tables_;  // "schema.table"
  std::vector<std::string> all_;       // the same
  std::vector<std::string> partitioned_;
  bool partitioned_known_ = true;  // partitioned_ is for the current rule tables
  std::uint64_t epoch_ = 0;        // bumped when the rule tables change
  // Every layout made gets a generation never used before: the rule engine caches bindings by
  // address and generation, and a freed layout's address may come back.
  std::uint64_t generations_ = 0;
};

}  // namespace pgbust::logical
