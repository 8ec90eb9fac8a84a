// `explain --db`: the old rows (and the new ones, with --set applied by PostgreSQL) of a real
// table, read in a READ ONLY transaction with the daemon's connection settings, and the
// table's real replica identity from the catalog. Nothing is written.
#include <algorithm>

#include "pgbust/cli/explain_model.hpp"
#include "pgbust/pg/catalog.hpp"
#include "pgbust/pg/libpq.hpp"

namespace pgbust::cli {

namespace {

// TOAST_TUPLE_THRESHOLD with 8 kB pages: rows larger than this have values moved out of line.
constexpr int kToastThreshold = 2032;

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\n");
  if (b == std::string_view::npos) return "";
  auto e = s.find_last_not_of(" \t\n");
  return std::string(s.substr(b, e - b + 1));
}

// "col = expr" -> the column's name (unquoted "Name" exact, others folded) and the expression.
std::pair<std::string, std::string> assignment(const std::string& set) {
  auto eq = set.find('=');
  if (eq == std::string::npos || trim(set.substr(0, eq)).empty() ||
      trim(set.substr(eq + 1)).empty())
    throw BadChange{"--set '" + set + "': expected COLUMN = EXPRESSION (one per --set)"};
  std::string col = trim(set.substr(0, eq));
  if (col.size() >= 2 && col.front() == '"' && col.back() == '"') {
    col = col.substr(1, col.size() - 2);
  } else {
    for (char& c : col)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return {col, trim(set.substr(eq + 1))};
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

DbRows read_db_rows(const std::shared_ptr<const rules::RuleSet>& rules, const DbQuery& q) {
  std::string err;
  auto name = rules::parse_table_name(q.table, &err);
  if (!name) throw BadChange{"--table '" + q.table + "': " + err};
  if (q.op != Op::Update && q.op != Op::Delete)
    throw BadChange{"--db explains an update (--set) or a delete (--op delete)"};
  if (q.op == Op::Update && q.sets.empty())
    throw BadChange{"--db: give --set COLUMN=EXPRESSION for an update, or --op delete"};
  if (q.op == Op::Delete && !q.sets.empty()) throw BadChange{"--set: a delete has no new row"};

  pg::Conn conn = pg::connect(q.conninfo);
  PGconn* c = conn.get();
  pg::exec(c, "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
           "starting a read-only transaction");
  pgcatalog::Table t = pgcatalog::read_table(c, name->schema, name->table);
  std::string qualified = name->schema + "." + name->table;
  if (!t.exists) throw BadChange{"--table: " + qualified + " does not exist in the database"};
  std::vector<pgcatalog::Column> columns = pgcatalog::poll_columns(c, name->schema, name->table);

  DbRows out;
  Identity identity;
  std::vector<std::string> key = t.identity_columns();
  switch (t.replica_identity) {
    case 'f':
      identity.kind = Identity::Kind::Full;
      out.identity = "REPLICA IDENTITY FULL";
      break;
    case 'i':
      identity.kind = Identity::Kind::Index;
      identity.columns = key;
      out.identity =
          "REPLICA IDENTITY USING INDEX " + t.identity_index_name + " (" + join(key) + ")";
      break;
    default:
      identity.kind = Identity::Kind::Default;
      identity.columns = key;
      out.identity = "REPLICA IDENTITY DEFAULT (primary key " + join(key) + ")";
  }
  if (t.replica_identity == 'n' || (key.empty() && t.replica_identity != 'f'))
    throw BadChange{qualified +
                    " has no replica identity (REPLICA IDENTITY NOTHING, or DEFAULT without a "
                    "primary key): PostgreSQL refuses its UPDATE and DELETE once it is "
                    "published; give it a primary key or REPLICA IDENTITY FULL"};

  // The columns explained: those the rules read, and the replica identity's (with FULL, the
  // primary key's: they name the row).
  if (t.replica_identity == 'f') key = t.primary_key;
  std::vector<std::string> wanted = rules->columns_needed(name->schema, name->table);
  for (const auto& k : key)
    if (std::find(wanted.begin(), wanted.end(), k) == wanted.end()) wanted.push_back(k);
  std::vector<std::string> names;
  for (const auto& col : columns) names.push_back(col.name);
  std::vector<const pgcatalog::Column*> read;
  for (const auto& w : wanted)
    for (const auto& col : columns)
      if (col.name == w) read.push_back(&col);

  std::vector<std::pair<std::string, std::string>> sets;  // column, expression
  for (const auto& s : q.sets) {
    auto a = assignment(s);
    if (std::find(names.begin(), names.end(), a.first) == names.end()) {
      std::string near = rules::suggest(a.first, names);
      throw BadChange{"--set '" + s + "': " + qualified + " has no column '" + a.first + "'" +
                      (near.empty() ? "" : "; did you mean '" + near + "'?")};
    }
    sets.push_back(a);
  }
  std::vector<std::string> items;
  for (const auto* col : read) items.push_back(pg::quote_ident(c, col->name));
  for (const auto& [col, expr] : sets) {
    auto it = std::find_if(columns.begin(), columns.end(),
                           [&, &name = col](const auto& x) { return x.name == name; });
    items.push_back("CAST((" + expr + ") AS " + it->type + ")");
  }
  // Unchanged values stored out of line are not in the WAL's new row ('u'). Whether a value
  // is out of line is not visible in SQL; a TOAST-able value stored larger than the TOAST
  // threshold (about 2 kB) is, and that is what is assumed.
  std::vector<std::size_t> toast_checked;  // indexes into `read`
  if (t.replica_identity != 'f' && q.op == Op::Update) {
    std::string regclass = pgcatalog::regclass_name(name->schema, name->table);
    const char* params[] = {regclass.c_str()};
    pg::Result st(PQexecParams(
        c,
        "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = "
        "pg_catalog.to_regclass($1) AND attnum > 0 AND attlen = -1 AND attstorage IN ('x', 'e')",
        1, nullptr, params, nullptr, nullptr, 0));
    if (!st || PQresultStatus(st.get()) != PGRES_TUPLES_OK)
      throw Error("reading the storage of the columns of " + qualified + " on " + pg::describe(c) +
                  ": " + pg::error_text(c));
    for (int r = 0; r < PQntuples(st.get()); ++r)
      for (std::size_t i = 0; i < read.size(); ++i)
        if (read[i]->name == PQgetvalue(st.get(), r, 0) &&
            std::none_of(sets.begin(), sets.end(),
                         [&](const auto& a) { return a.first == read[i]->name; })) {
          toast_checked.push_back(i);
          items.push_back("pg_catalog.pg_column_size(" + pg::quote_ident(c, read[i]->name) +
                          ") > " + std::to_string(kToastThreshold));
        }
  }
  std::string sql = "SELECT " + join(items);
  sql += " FROM " + t.sql_name + " WHERE (" + q.where + ") LIMIT " + std::to_string(kMaxDbRows + 1);
  pg::Result res(PQexecParams(c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0));
  if (!res || PQresultStatus(res.get()) != PGRES_TUPLES_OK)
    throw Error("reading the rows of " + qualified + " where " + q.where + " on " +
                pg::describe(c) + ": " +
                pg::one_line(res ? pg::error_text(res.get()) : pg::error_text(c)));
  int n = PQntuples(res.get());
  out.truncated = n > kMaxDbRows;
  n = std::min(n, kMaxDbRows);
  auto value = [&](int r, int col) -> std::optional<std::string> {
    if (PQgetisnull(res.get(), r, col)) return std::nullopt;
    return std::string(PQgetvalue(res.get(), r, col));
  };
  for (int r = 0; r < n; ++r) {
    DbRow row;
    row.change.table = qualified;
    row.change.op = q.op;
    row.change.identity = identity;
    row.change.key_prefix = q.key_prefix;
    ColumnValues old_row;
    for (std::size_t i = 0; i < read.size(); ++i)
      old_row.emplace_back(read[i]->name, value(r, static_cast<int>(i)));
    for (const auto& k : key)
      for (const auto& [col, v] : old_row)
        if (col == k) row.label += (row.label.empty() ? "" : ", ") + k + " = " + v.value_or("NULL");
    if (q.op == Op::Update) {
      ColumnValues new_row = old_row;
      for (std::size_t s = 0; s < sets.size(); ++s) {
        auto v = value(r, static_cast<int>(read.size() + s));
        auto it = std::find_if(new_row.begin(), new_row.end(),
                               [&](const auto& x) { return x.first == sets[s].first; });
        if (it != new_row.end()) it->second = v;
      }
      row.change.new_row = std::move(new_row);
      for (std::size_t k = 0; k < toast_checked.size(); ++k)
        if (value(r, static_cast<int>(read.size() + sets.size() + k)) == "t")
          row.change.unchanged_toast.push_back(read[toast_checked[k]]->name);
    }
    row.change.old_row = std::move(old_row);
    out.rows.push_back(std::move(row));
  }
  pg::exec(c, "ROLLBACK", "ending the read-only transaction");
  return out;
}

}  // namespace pgbust::cli
