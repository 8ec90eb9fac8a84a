// What pgbust reads from the PostgreSQL catalog: tables (columns, keys, replica identity),
// publications, slots, the role and server settings, triggers and indexes. The one place for
// the catalog queries of `pgbust setup` and `pgbust check --db`; blocking, throws pg errors.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pgbust::pgcatalog {

// One column as pg_attribute / pg_type describe it (what the poll source plans with).
struct Column {
  std::string name;
  std::string type;     // format_type(atttypid, atttypmod), used in casts
  char category = 'X';  // pg_type.typcategory: 'N' numeric, 'D' date/time, ...
  bool primary_key = false;
};

// Lists a table's columns in order (one parameter: the quoted qualified name).
extern const char* const kColumnsSql;

// One table (or a relation of another kind, see `kind`) as the catalog describes it.
struct Table {
  bool exists = false;
  std::vector<std::string> columns;         // in table order
  std::vector<std::string> primary_key;     // in table order
  char replica_identity = 'd';              // pg_class.relreplident: d, f, i, n
  std::vector<std::string> identity_index;  // REPLICA IDENTITY USING INDEX: its columns
  char kind = 'r';                          // pg_class.relkind: r table, p partitioned, v view...
  std::string sql_name{};                   // schema.table as quote_ident() spells it
  std::string identity_index_name{};        // REPLICA IDENTITY USING INDEX: its name
  std::vector<std::string> leaves{};        // partitioned: its leaf partitions, "schema.table"

  // The columns the old row of an UPDATE or DELETE carries in the WAL: the primary key
  // (DEFAULT), the index columns (USING INDEX), every column (FULL); empty when the table has
  // no replica identity (NOTHING, DEFAULT without a primary key, USING a dropped index),
  // and then a published table refuses UPDATE and DELETE.
  std::vector<std::string> identity_columns() const;
};

// By "schema.table".
using Tables = std::map<std::string, Table>;

// "schema"."table" for to_regclass and parameters.
std::string regclass_name(const std::string& schema, const std::string& table);

Table read_table(PGconn* conn, const std::string& schema, const std::string& table);

// "schema.table" of every ordinary or partitioned table outside the system schemas (for
// "did you mean" suggestions).
std::vector<std::string> table_names(PGconn* conn);

struct Publication {
  bool exists = false;
  std::string sql_name;  // quote_ident(pubname)
  bool all_tables = false;
  bool insert = true, update = true, del = true, truncate = true;  // what it publishes
  // publish_via_partition_root: a partitioned table's changes under its own name (else under
  // each partition's, and pg_publication_tables lists the partitions).
  bool via_root = false;
  struct Entry {
    std::vector<std::string> columns;  // PostgreSQL 15+: the published columns (all without a
                                       // column list); empty before 15 (all)
    std::string row_filter;            // PostgreSQL 15+: the WHERE of the table, "" for none
  };
  std::map<std::string, Entry> tables;  // by "schema.table"
};
Publication read_publication(PGconn* conn, const std::string& name);

// Whether the publication carries each rule table's changes now, and under which identity:
// the one coverage check of the logical source (at every connect, on its replication
// connection, and periodically on a side connection). Covered means pg_publication_tables
// lists the table under its own name, which also holds for FOR ALL TABLES, FOR TABLES IN
// SCHEMA and a partitioned table published via its root; without publish_via_partition_root
// pg_publication_tables lists its leaf partitions instead, and it is covered when every leaf
// is listed (the logical source then maps each leaf's changes to it).
struct TableCoverage {
  std::string table;  // "schema.table" as the rules name it
  bool exists = false;
  bool covered = false;
  // The relation's OID, the publication's and its pg_publication_rel entry's: a table swap
  // (another relation under the name), a re-created publication or a table dropped from it
  // and added back all change it, even when a check sees it covered before and after.
  std::string identity;
  std::string sql_name;      // "schema"."table", for the ALTER PUBLICATION hint
  bool partitioned = false;  // relkind 'p'
};
struct Coverage {
  bool publication_exists = false;
  std::string publication_sql;  // quote_ident(pubname)
  std::vector<TableCoverage> tables;
};
// One query (simple protocol: literals inlined, so a replication connection can run it too)
// returning a row per "schema.table" (a bare name is in public); read by read_coverage().
std::string coverage_sql(const std::string& publication, const std::vector<std::string>& tables);
Coverage read_coverage(const PGresult* result, const std::string& publication);

// A relation by OID and its partition ancestors, itself first then up to the root (no rows:
// no such relation), and whether each one's pg_class row was last written before, by, or
// after a transaction of the stream: the catalog answers as of now, and a row written after
// the transaction (ATTACH, DETACH, ALTER) may have said otherwise when it ran. Parameters:
// $1 the OID, $2 the transaction's xid (text). Compared with age(), so a frozen row reads as
// old; a wrapped-around xmin may read as changed after (a needless widening, never a miss).
extern const char* const kPartitionChainSql;
struct ChainLink {
  std::string table;  // "schema.table"
  enum class Changed : std::uint8_t { Before, Same, After } changed = Changed::Before;
};
std::vector<ChainLink> read_partition_chain(const PGresult* result);

struct Slot {
  bool exists = false;
  std::string plugin, type, database;  // pg_replication_slots: plugin, slot_type, database
};
Slot read_slot(PGconn* conn, const std::string& name);

// The connection's role and the settings that decide whether replication can work.
struct Server {
  int version = 0;  // PQserverVersion
  std::string database, user;
  std::string user_sql;                         // quote_ident(current_user)
  bool superuser = false, replication = false;  // the role's attributes
  std::string wal_level;
  int max_replication_slots = 0, slots_used = 0;
};
Server read_server(PGconn* conn);

// A user trigger of a table and its function.
struct Trigger {
  std::string name;
  char enabled = 'O';  // pg_trigger.tgenabled: O origin, D disabled, R replica, A always
  int type = 0;        // pg_trigger.tgtype bits: 1 row, 4 insert, 8 delete, 16 update, 32 truncate
  std::string function_schema, function_name, function_source;
};
std::vector<Trigger> read_triggers(PGconn* conn, const std::string& schema,
                                   const std::string& table);

// The columns that have a DEFAULT, with its expression (pg_get_expr).
std::map<std::string, std::string> column_defaults(PGconn* conn, const std::string& schema,
                                                   const std::string& table);

// A unique index that REPLICA IDENTITY USING INDEX accepts: valid, immediate (not deferrable),
// not partial, no expressions, every key column NOT NULL.
struct IdentityIndex {
  std::string name;                  // pg_class.relname
  std::string sql_name;              // quote_ident(relname), for ALTER TABLE ... USING INDEX
  std::vector<std::string> columns;  // the key columns, in index order
};
// In name order.
std::vector<IdentityIndex> identity_indexes(PGconn* conn, const std::string& schema,
                                            const std::string& table);

// The leading column of every valid, non-partial index of the table.
std::vector<std::string> index_leading_columns(PGconn* conn, const std::string& schema,
                                               const std::string& table);

// The table's columns as the poll source reads them (kColumnsSql), for poll::make_plan;
// empty when the table does not exist.
std::vector<Column> poll_columns(PGconn* conn, const std::string& schema, const std::string& table);

// Whether a replication connection (what the logical source opens: replication=database)
// can be made and answers IDENTIFY_SYSTEM: nullopt when it can, else the server's text.
std::optional<std::string> try_replication_connection(const std::string& conninfo);

}  // namespace pgbust::pgcatalog
