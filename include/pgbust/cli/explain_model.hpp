// One row change as a DBA describes it (table, op, old/new values, the table's replica
// identity), and the Redis commands the rules send for it: the model behind `explain`,
// `explain --db` and `pgbust test`, shaped like what the logical source hands the daemon.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgbust/rules/rules.hpp"

namespace pgbust::cli {

// Column values as PostgreSQL text, in the order given; nullopt is NULL.
using ColumnValues = std::vector<std::pair<std::string, std::optional<std::string>>>;

// A bad change description; the message says which input and what was expected.
struct BadChange {
  std::string message;
};

// A JSON object of column values (numbers as written, true/false as t/f, null as NULL).
// `what` names the input in errors ("--old").
ColumnValues parse_row_json(const std::string& what, const std::string& text);

// What the old row of an UPDATE or DELETE carries in the WAL (pg_class.relreplident).
struct Identity {
  enum class Kind { Unspecified, Default, Full, Index } kind = Kind::Unspecified;
  std::vector<std::string> columns;  // Default: the primary key; Index: the index's columns
};
// "default", "full", "index:a,b" (also "nothing": refused with a reason).
std::optional<Identity> parse_identity(std::string_view text, std::string* error);

// Which source hands the daemon the change: what it knows of the old row differs.
// Logical: the WAL's old row under the replica identity. Notify: the trigger sends the whole
// old row. Poll: a polled update's old row is its key as now (other old values unknown); a
// delete or truncate is seen only as rows gone, so every rule of the table widens.
enum class ChangeSource : std::uint8_t { Logical, Notify, Poll };
// "logical", "notify" or "poll"; nullopt otherwise.
std::optional<ChangeSource> parse_source(std::string_view text);

struct Change {
  std::string table;  // schema.table or table
  ChangeSource source = ChangeSource::Logical;
  Op op = Op::Insert;
  std::optional<ColumnValues> old_row, new_row;
  // Unspecified: the old row as given (every given value known, as with FULL); an update
  // without one is DEFAULT with `key` (or `id`, said so) as the primary key.
  Identity identity;
  std::vector<std::string> key;  // --key: the primary key columns (DEFAULT identity)
  std::string key_prefix;
  // Columns of the new row stored out of line (TOAST) and not changed by the update: the WAL
  // does not carry them ('u'), as the logical source sees it.
  std::vector<std::string> unchanged_toast;
};

// One command as the daemon sends it. verb: UNLINK, SCAN-DELETE, INCR, PUBLISH, XADD (the
// daemon adds MAXLEN ~ redis.stream_maxlen, which explain does not know).
struct Command {
  std::string verb, key, message;  // message: PUBLISH's payload, XADD's entry
  std::string line() const;        // redis-cli syntax, as explain prints it
};

struct Explanation {
  std::vector<std::string> lines;  // comments and commands, as explain prints them
  std::vector<Command> commands;   // the commands alone, in order
  std::vector<std::string> rules;  // the rules that fired, in order
};

// Throws BadChange.
Explanation explain(const std::shared_ptr<const rules::RuleSet>& rules, const Change& change);

// An argument as redis-cli reads it back: bare when it can be, otherwise quoted.
std::string redis_cli_arg(std::string_view s);

}  // namespace pgbust::cli

namespace pgbust::cli {

// `explain --db`: the rows a WHERE clause selects, read with the daemon's connection
// settings (so values render as the daemon sees them) in a READ ONLY transaction, and the
// same rows with SET assignments applied, evaluated by PostgreSQL (never written).
struct DbQuery {
  std::string conninfo;
  std::string table;              // schema.table or table
  std::string where;              // SQL condition, e.g. "id = 5"
  std::vector<std::string> sets;  // "col = expr", one assignment each (update)
  Op op = Op::Update;             // update or delete
  std::string key_prefix;
};

struct DbRow {
  std::string label;  // the row's replica identity values, e.g. "id = 5"
  Change change;      // identity from the catalog, old and new rows from the database
};

struct DbRows {
  std::vector<DbRow> rows;
  std::string identity;  // e.g. "REPLICA IDENTITY DEFAULT (primary key id)"
  bool truncated = false;
};

// At most this many rows are explained.
constexpr int kMaxDbRows = 100;

// Throws BadChange for bad input (an unknown column, a table without a replica identity) and
// pgbust::Error for database errors (the server's text, e.g. a syntax error in --where).
DbRows read_db_rows(const std::shared_ptr<const rules::RuleSet>& rules, const DbQuery& q);

}  // namespace pgbust::cli
