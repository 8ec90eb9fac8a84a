// Catalog queries shared by `pgbust setup` and `pgbust check --db`: tables, publications,
// slots, role and settings, triggers, indexes.
#include "pgbust/pg/catalog.hpp"

#include "pgbust/pg/conninfo.hpp"

#include "pgbust/pg/async.hpp"
#include "pgbust/pg/connect_params.hpp"
#include "pgbust/pg/libpq.hpp"

namespace pgbust::pgcatalog {

namespace {

// Runs one parameterized query; throws (ConnectionError when the connection broke) naming
// `what`, the server and the server's text.
pg::Result query(PGconn* conn, const char* sql, const std::vector<std::string>& params,
                 const std::string& what) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  pg::Result res(PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(),
                              nullptr, nullptr, 0));
  if (res && PQresultStatus(res.get()) == PGRES_TUPLES_OK) return res;
  std::string text = res ? PQresultErrorMessage(res.get()) : pg::error_text(conn);
  text = pg::one_line(text);
  if (PQstatus(conn) != CONNECTION_OK)
    throw ConnectionError(what + " on " + pg::describe(conn) + ": " + text);
  throw Error(what + " on " + pg::describe(conn) + ": " + text);
}

std::string cell(const pg::Result& res, int row, int col) {
  return PQgetisnull(res.get(), row, col) ? std::string() : PQgetvalue(res.get(), row, col);
}

bool flag(const pg::Result& res, int row, int col) {
  return cell(res, row, col) == "t";
}

const char* const kTableSql =
    "SELECT c.relkind, c.relreplident, "
    "pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), a.attname, "
    "COALESCE(a.attnum = ANY(pk.indkey), false), COALESCE(a.attnum = ANY(ri.indkey), false), "
    "ric.relname "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_catalog.pg_attribute a "
    "  ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "LEFT JOIN pg_catalog.pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary "
    "LEFT JOIN pg_catalog.pg_index ri ON ri.indrelid = c.oid AND ri.indisreplident "
    "LEFT JOIN pg_catalog.pg_class ric ON ric.oid = ri.indexrelid "
    "WHERE c.oid = pg_catalog.to_regclass($1) ORDER BY a.attnum";

const char* const kTableNamesSql =
    "SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' "
    "AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1";

const char* const kPublicationSql =
    "SELECT pg_catalog.quote_ident(pubname), puballtables, pubinsert, pubupdate, pubdelete, "
    "pubtruncate, pubviaroot FROM pg_catalog.pg_publication WHERE pubname = $1";

// PostgreSQL 15 added column lists (attnames) and row filters (rowfilter).
const char* const kPublicationTablesSql =
    "SELECT pt.schemaname || '.' || pt.tablename, a.attname, pt.rowfilter "
    "FROM pg_catalog.pg_publication_tables pt "
    "LEFT JOIN LATERAL pg_catalog.unnest(pt.attnames) WITH ORDINALITY AS a(attname, i) ON true "
    "WHERE pt.pubname = $1 ORDER BY 1, a.i";
const char* const kPublicationTablesSql14 =
    "SELECT schemaname || '.' || tablename, NULL, NULL FROM pg_catalog.pg_publication_tables "
    "WHERE pubname = $1";

const char* const kSlotSql =
    "SELECT plugin, slot_type, database FROM pg_catalog.pg_replication_slots WHERE slot_name = $1";

const char* const kServerSql =
    "SELECT pg_catalog.current_database(), current_user, pg_catalog.quote_ident(current_user), "
    "r.rolsuper, r.rolreplication, "
    "pg_catalog.current_setting('wal_level'), "
    "pg_catalog.current_setting('max_replication_slots')::int, "
    "(SELECT count(*) FROM pg_catalog.pg_replication_slots)::int "
    "FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

const char* const kTriggersSql =
    "SELECT t.tgname, t.tgenabled, t.tgtype, n.nspname, p.proname, p.prosrc "
    "FROM pg_catalog.pg_trigger t "
    "JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
    "WHERE t.tgrelid = pg_catalog.to_regclass($1) AND NOT t.tgisinternal ORDER BY t.tgname";

const char* const kDefaultsSql =
    "SELECT a.attname, pg_catalog.pg_get_expr(d.adbin, d.adrelid) "
    "FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_attribute a "
    "ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
    "WHERE d.adrelid = pg_catalog.to_regclass($1) AND NOT a.attisdropped";

// One row per key column of each index REPLICA IDENTITY USING INDEX accepts (see
// IdentityIndex), in index then column order.
const char* const kIdentityIndexesSql =
    "SELECT c.relname, pg_catalog.quote_ident(c.relname), a.attname "
    "FROM pg_catalog.pg_index i "
    "JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
    "CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY "
    "AS k(attnum, ord) "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
    "WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisunique AND i.indisvalid "
    "AND i.indimmediate AND i.indpred IS NULL AND i.indexprs IS NULL "
    "AND k.ord <= i.indnkeyatts "
    "AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) AS x(n) "
    "JOIN pg_catalog.pg_attribute b ON b.attrelid = i.indrelid AND b.attnum = x.n "
    "WHERE x.n <= 0 OR NOT b.attnotnull) "
    "ORDER BY c.relname, k.ord";

const char* const kIndexesSql =
    "SELECT a.attname FROM pg_catalog.pg_index i "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
    "WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisvalid AND i.indpred IS NULL";

}  // namespace

const char* const kColumnsSql =
    "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), t.typcategory, "
    "COALESCE(a.attnum = ANY(i.indkey), false) "
    "FROM pg_catalog.pg_attribute a "
    "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_catalog.pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
    "WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum";

std::vector<std::string> Table::identity_columns() const {
  switch (replica_identity) {
    case 'f':
      return columns;
    case 'i':
      return identity_index;
    case 'n':
      return {};
    default:
      return primary_key;
  }
}

std::string regclass_name(const std::string& schema, const std::string& table) {
  return pg::quote_ident(schema) + "." + pg::quote_ident(table);
}

const char* const kLeavesSql =
    "SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_partition_tree($1::regclass) pt "
    "JOIN pg_catalog.pg_class c ON c.oid = pt.relid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE pt.isleaf ORDER BY 1";

Table read_table(PGconn* conn, const std::string& schema, const std::string& table) {
  auto res = query(conn, kTableSql, {regclass_name(schema, table)},
                   "reading the catalog of " + schema + "." + table);
  Table t;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    t.exists = true;
    t.kind = cell(res, r, 0)[0];
    t.replica_identity = cell(res, r, 1)[0];
    t.sql_name = cell(res, r, 2);
    t.identity_index_name = cell(res, r, 6);
    if (PQgetisnull(res.get(), r, 3)) continue;  // a table without columns
    std::string col = cell(res, r, 3);
    t.columns.push_back(col);
    if (flag(res, r, 4)) t.primary_key.push_back(col);
    if (flag(res, r, 5)) t.identity_index.push_back(col);
  }
  if (t.exists && t.kind == 'p') {
    auto leaves = query(conn, kLeavesSql, {regclass_name(schema, table)},
                        "listing the partitions of " + schema + "." + table);
    for (int r = 0; r < PQntuples(leaves.get()); ++r) t.leaves.push_back(cell(leaves, r, 0));
  }
  return t;
}

std::vector<std::string> table_names(PGconn* conn) {
  auto res = query(conn, kTableNamesSql, {}, "listing tables");
  std::vector<std::string> out;
  for (int r = 0; r < PQntuples(res.get()); ++r) out.push_back(cell(res, r, 0));
  return out;
}

Publication read_publication(PGconn* conn, const std::string& name) {
  Publication p;
  auto res = query(conn, kPublicationSql, {name}, "reading publication \"" + name + "\"");
  if (PQntuples(res.get()) == 0) return p;
  p.exists = true;
  p.sql_name = cell(res, 0, 0);
  p.all_tables = flag(res, 0, 1);
  p.insert = flag(res, 0, 2);
  p.update = flag(res, 0, 3);
  p.del = flag(res, 0, 4);
  p.truncate = flag(res, 0, 5);
  p.via_root = flag(res, 0, 6);
  bool v15 = PQserverVersion(conn) >= 150000;
  auto tables = query(conn, v15 ? kPublicationTablesSql : kPublicationTablesSql14, {name},
                      "reading the tables of publication \"" + name + "\"");
  for (int r = 0; r < PQntuples(tables.get()); ++r) {
    Publication::Entry& e = p.tables[cell(tables, r, 0)];
    if (!PQgetisnull(tables.get(), r, 1)) e.columns.push_back(cell(tables, r, 1));
    e.row_filter = cell(tables, r, 2);
  }
  return p;
}

std::string coverage_sql(const std::string& publication, const std::vector<std::string>& tables) {
  std::string values;
  int n = 0;
  for (const auto& t : tables) {
    auto dot = t.find('.');
    std::string schema = dot == std::string::npos ? "public" : t.substr(0, dot);
    std::string name = dot == std::string::npos ? t : t.substr(dot + 1);
    values += (values.empty() ? "(" : ", (") + std::to_string(++n) + ", " +
              pg::quote_literal(schema + "." + name) + ", " +
              pg::quote_literal(regclass_name(schema, name)) + ")";
  }
  if (values.empty()) values = "(0, NULL, NULL)";
  // Rows: one with a NULL name for the publication itself, then one per table. A partitioned
  // table published without publish_via_partition_root is covered when every leaf partition
  // is listed (its changes come under the leaves' names; the logical source maps them).
  return "WITH pub AS (SELECT oid, pubname, pg_catalog.quote_ident(pubname) AS q "
         "FROM pg_catalog.pg_publication WHERE pubname = " +
         pg::quote_literal(publication) + "), t(i, name, reg) AS (VALUES " + values +
         "), listed AS (SELECT n.oid AS nsp, pt.tablename FROM pg_catalog.pg_publication_tables "
         "pt JOIN pub ON pt.pubname = pub.pubname JOIN pg_catalog.pg_namespace n "
         "ON n.nspname = pt.schemaname) "
         "SELECT NULL::text, (SELECT q FROM pub), false, NULL::text, NULL::text, 0, NULL::text "
         "UNION ALL "
         "SELECT t.name, c.oid::text, EXISTS (SELECT 1 FROM listed l "
         "WHERE l.nsp = c.relnamespace AND l.tablename = c.relname) OR (c.relkind = 'p' AND "
         "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_tree(c.oid) pt "
         "JOIN pg_catalog.pg_class lc ON lc.oid = pt.relid WHERE pt.isleaf AND NOT EXISTS "
         "(SELECT 1 FROM listed l WHERE l.nsp = lc.relnamespace AND l.tablename = lc.relname))), "
         "'rel ' || c.oid || ' pub ' || COALESCE((SELECT oid::text FROM pub), '-') || ' entry ' || "
         "COALESCE((SELECT pr.oid::text FROM pg_catalog.pg_publication_rel pr JOIN pub "
         "ON pr.prpubid = pub.oid WHERE pr.prrelid = c.oid), '-'), "
         "t.reg, t.i, c.relkind::text "
         "FROM t LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(t.reg) "
         "WHERE t.name IS NOT NULL "
         "ORDER BY 6";
}

Coverage read_coverage(const PGresult* result, const std::string& publication) {
  auto text = [&](int r, int c) {
    return PQgetisnull(result, r, c) ? std::string() : std::string(PQgetvalue(result, r, c));
  };
  Coverage out;
  out.publication_sql = pg::quote_ident(publication);
  for (int r = 0; r < PQntuples(result); ++r) {
    if (PQgetisnull(result, r, 0)) {
      out.publication_exists = !PQgetisnull(result, r, 1);
      continue;
    }
    TableCoverage t;
    t.table = text(r, 0);
    t.exists = !PQgetisnull(result, r, 1);
    t.covered = text(r, 2) == "t";
    t.identity = text(r, 3);
    t.sql_name = text(r, 4);
    t.partitioned = text(r, 6) == "p";
    out.tables.push_back(std::move(t));
  }
  return out;
}

const char* const kPartitionChainSql =
    "SELECT n.nspname || '.' || c.relname, "
    "CASE WHEN c.xmin = $2::xid THEN 's' WHEN pg_catalog.age(c.xmin) >= 0 AND "
    "pg_catalog.age(c.xmin) < pg_catalog.age($2::xid) THEN 'n' ELSE 'o' END "
    "FROM pg_catalog.pg_class r CROSS JOIN LATERAL (SELECT r.oid, 0::bigint UNION ALL "
    "SELECT a.relid, a.i FROM pg_catalog.pg_partition_ancestors(r.oid) WITH ORDINALITY a(relid, i) "
    "WHERE a.relid <> r.oid) x(relid, i) "
    "JOIN pg_catalog.pg_class c ON c.oid = x.relid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE r.oid = $1::oid ORDER BY x.i";

std::vector<ChainLink> read_partition_chain(const PGresult* result) {
  std::vector<ChainLink> out;
  for (int r = 0; r < PQntuples(result); ++r) {
    const char* state = PQgetvalue(result, r, 1);
    out.push_back({PQgetvalue(result, r, 0), state[0] == 'n'   ? ChainLink::Changed::After
                                             : state[0] == 's' ? ChainLink::Changed::Same
                                                               : ChainLink::Changed::Before});
  }
  return out;
}

Slot read_slot(PGconn* conn, const std::string& name) {
  auto res = query(conn, kSlotSql, {name}, "reading replication slot \"" + name + "\"");
  Slot s;
  if (PQntuples(res.get()) == 0) return s;
  s.exists = true;
  s.plugin = cell(res, 0, 0);
  s.type = cell(res, 0, 1);
  s.database = cell(res, 0, 2);
  return s;
}

Server read_server(PGconn* conn) {
  auto res = query(conn, kServerSql, {}, "reading the role and replication settings");
  Server s;
  s.version = PQserverVersion(conn);
  if (PQntuples(res.get()) == 0) return s;
  s.database = cell(res, 0, 0);
  s.user = cell(res, 0, 1);
  s.user_sql = cell(res, 0, 2);
  s.superuser = flag(res, 0, 3);
  s.replication = flag(res, 0, 4);
  s.wal_level = cell(res, 0, 5);
  s.max_replication_slots = std::stoi(cell(res, 0, 6));
  s.slots_used = std::stoi(cell(res, 0, 7));
  return s;
}

std::vector<Trigger> read_triggers(PGconn* conn, const std::string& schema,
                                   const std::string& table) {
  auto res = query(conn, kTriggersSql, {regclass_name(schema, table)},
                   "reading the triggers of " + schema + "." + table);
  std::vector<Trigger> out;
  for (int r = 0; r < PQntuples(res.get()); ++r)
    out.push_back({cell(res, r, 0), cell(res, r, 1)[0], std::stoi(cell(res, r, 2)), cell(res, r, 3),
                   cell(res, r, 4), cell(res, r, 5)});
  return out;
}

std::vector<IdentityIndex> identity_indexes(PGconn* conn, const std::string& schema,
                                            const std::string& table) {
  auto res = query(conn, kIdentityIndexesSql, {regclass_name(schema, table)},
                   "reading the unique indexes of " + schema + "." + table);
  std::vector<IdentityIndex> out;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    if (out.empty() || out.back().name != cell(res, r, 0))
      out.push_back({cell(res, r, 0), cell(res, r, 1), {}});
    out.back().columns.push_back(cell(res, r, 2));
  }
  return out;
}

std::vector<std::string> index_leading_columns(PGconn* conn, const std::string& schema,
                                               const std::string& table) {
  auto res = query(conn, kIndexesSql, {regclass_name(schema, table)},
                   "reading the indexes of " + schema + "." + table);
  std::vector<std::string> out;
  for (int r = 0; r < PQntuples(res.get()); ++r) out.push_back(cell(res, r, 0));
  return out;
}

std::map<std::string, std::string> column_defaults(PGconn* conn, const std::string& schema,
                                                   const std::string& table) {
  auto res = query(conn, kDefaultsSql, {regclass_name(schema, table)},
                   "reading the column defaults of " + schema + "." + table);
  std::map<std::string, std::string> out;
  for (int r = 0; r < PQntuples(res.get()); ++r) out[cell(res, r, 0)] = cell(res, r, 1);
  return out;
}

std::vector<Column> poll_columns(PGconn* conn, const std::string& schema,
                                 const std::string& table) {
  auto res = query(conn, kColumnsSql, {regclass_name(schema, table)},
                   "reading the columns of " + schema + "." + table);
  std::vector<Column> out;
  for (int r = 0; r < PQntuples(res.get()); ++r)
    out.push_back({cell(res, r, 0), cell(res, r, 1), cell(res, r, 2)[0], flag(res, r, 3)});
  return out;
}

std::optional<std::string> try_replication_connection(const std::string& conninfo) {
  pg::ConnectParams params(
      conninfo, {}, {{"replication", "database"}, {"fallback_application_name", "pgbust-check"}});
  pg::Conn conn(PQconnectdbParams(params.keys(), params.values(), 1));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK)
    return pg::one_line(pg::connect_error(conn.get(), conninfo));
  pg::Result res(PQexec(conn.get(), "IDENTIFY_SYSTEM"));
  if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK)
    return pg::one_line(res ? PQresultErrorMessage(res.get()) : pg::error_text(conn.get()));
  return std::nullopt;
}

}  // namespace pgbust::pgcatalog
