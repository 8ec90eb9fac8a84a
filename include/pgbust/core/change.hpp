// The source-agnostic description of one committed row change (the ChangeEvent of DESIGN.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgbust {

enum class Op : std::uint8_t { Insert, Update, Delete, Truncate };

std::string_view to_string(Op op);
// "insert", "update", "delete", "truncate" (case-insensitive); nullopt otherwise.
std::optional<Op> parse_op(std::string_view text);

enum class SourceKind : std::uint8_t { Logical, Notify, Poll, Explain };

std::string_view to_string(SourceKind kind);

// Why a value, or a whole old image, is not known. Rules widen for these (promise 3) and
// the reason is reported in `explain`, logs and metrics.
enum class Unknown : std::uint8_t {
  None,
  NotInImage,  // the source did not send this column (e.g. old row with REPLICA IDENTITY DEFAULT)
  UnchangedToast,    // pgoutput 'u': TOASTed value not changed and not sent
  Truncate,          // TRUNCATE carries no rows
  NotifyGap,         // NOTIFY messages may have been lost while disconnected
  NotifyOversized,   // the trigger's payload carried only key columns
  NotifyMalformed,   // a payload pgbust could not read
  Polled,            // the poll source cannot see old images or deletes
  ColumnMissing,     // a rule names a column the table (or publication) does not have
  TooManyKeys,       // a transaction exceeded the per-transaction key limit
  Explicit,          // explain / tests asked for it
  SlotGap,           // the replication slot vanished or belongs to another system
  PublicationGap,    // a rule table was out of the publication (or swapped) for a while
  UnknownPartition,  // a relation's changes in the stream may be a rule table's partition's
};

std::string_view to_string(Unknown why);  // for people: "NOTIFY gap after (re)connect"
std::string_view label(Unknown why);      // for metrics: "notify_gap"
// Whether it stands for changes pgbust could not see at all (promise 8): a publish carries
// "gap": true.
bool is_gap(Unknown why);

// One column value in a row image.
struct Datum {
  enum class State : std::uint8_t { Unknown, Null, Value };
  State state = State::Unknown;
  Unknown why = Unknown::NotInImage;  // meaningful when state == Unknown
  std::string_view text;              // PostgreSQL text output; valid during the callback only

  static Datum null() { return {State::Null, Unknown::None, {}}; }
  static Datum value(std::string_view t) { return {State::Value, Unknown::None, t}; }
  static Datum unknown(Unknown w) { return {State::Unknown, w, {}}; }
};

// The column layout of a table as one source sees it. A source keeps one TableInfo per table
// and bumps `generation` whenever the layout changes (pgoutput Relation after ALTER TABLE),
// so anything bound to the layout (rules::Engine::bind) knows to re-bind.
struct TableInfo {
  std::string schema;
  std::string name;
  std::vector<std::string> columns;
  std::vector<bool> key;  // same size as columns: part of the replica identity / primary key
  std::uint64_t generation = 0;

  std::string qualified() const { return schema + "." + name; }
  // Index of a column by name, or -1.
  int column_index(std::string_view column) const;
};

// A row image: values indexed like TableInfo::columns. A column index past the end is Unknown.
struct RowImage {
  std::vector<Datum> values;
  Unknown missing_why = Unknown::NotInImage;  // reason for columns past the end
  Datum at(std::size_t i) const {
    return i < values.size() ? values[i] : Datum::unknown(missing_why);
  }
};

// One committed row change. Pointers are borrowed for the duration of the call.
struct ChangeEvent {
  SourceKind source = SourceKind::Logical;
  Op op = Op::Insert;
  const TableInfo* table = nullptr;
  const RowImage* old_row = nullptr;  // delete/update: what is known of the old row, else null
  const RowImage* new_row = nullptr;  // insert/update: the new row, else null
};

}  // namespace pgbust
