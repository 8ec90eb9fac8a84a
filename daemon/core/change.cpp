// Names for the enums of change.hpp, and TableInfo's column lookup.
#include "pgbust/core/change.hpp"

#include <algorithm>
#include <cctype>

namespace pgbust {

std::string_view to_string(Op op) {
  switch (op) {
    case Op::Insert:
      return "insert";
    case Op::Update:
      return "update";
    case Op::Delete:
      return "delete";
    case Op::Truncate:
      return "truncate";
  }
  return "?";
}

std::optional<Op> parse_op(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "insert") return Op::Insert;
  if (lower == "update") return Op::Update;
  if (lower == "delete") return Op::Delete;
  if (lower == "truncate") return Op::Truncate;
  return std::nullopt;
}

std::string_view to_string(SourceKind kind) {
  switch (kind) {
    case SourceKind::Logical:
      return "logical";
    case SourceKind::Notify:
      return "notify";
    case SourceKind::Poll:
      return "poll";
    case SourceKind::Explain:
      return "explain";
  }
  return "?";
}

std::string_view label(Unknown why) {
  switch (why) {
    case Unknown::None:
      return "known";
    case Unknown::NotInImage:
      return "not_in_image";
    case Unknown::UnchangedToast:
      return "unchanged_toast";
    case Unknown::Truncate:
      return "truncate";
    case Unknown::NotifyGap:
      return "notify_gap";
    case Unknown::NotifyOversized:
      return "notify_oversized";
    case Unknown::NotifyMalformed:
      return "notify_malformed";
    case Unknown::Polled:
      return "polled";
    case Unknown::ColumnMissing:
      return "column_missing";
    case Unknown::TooManyKeys:
      return "too_many_keys";
    case Unknown::Explicit:
      return "explicit";
    case Unknown::SlotGap:
      return "slot_gap";
    case Unknown::PublicationGap:
      return "publication_gap";
    case Unknown::UnknownPartition:
      return "unknown_partition";
  }
  return "unknown";
}

bool is_gap(Unknown why) {
  return why == Unknown::SlotGap || why == Unknown::NotifyGap || why == Unknown::PublicationGap;
}

std::string_view to_string(Unknown why) {
  switch (why) {
    case Unknown::None:
      return "known";
    case Unknown::NotInImage:
      return "old value not in the WAL (REPLICA IDENTITY DEFAULT)";
    case Unknown::UnchangedToast:
      return "unchanged TOAST value not sent";
    case Unknown::Truncate:
      return "TRUNCATE";
    case Unknown::NotifyGap:
      return "NOTIFY gap after (re)connect";
    case Unknown::NotifyOversized:
      return "NOTIFY payload too large, key columns only";
    case Unknown::NotifyMalformed:
      return "malformed NOTIFY payload";
    case Unknown::Polled:
      return "polled change (old row and deletes not visible)";
    case Unknown::ColumnMissing:
      return "column not in table or publication";
    case Unknown::TooManyKeys:
      return "transaction exceeded the per-transaction key limit";
    case Unknown::Explicit:
      return "value not given";
    case Unknown::SlotGap:
      return "replication slot gap (changes while it was missing are unknown)";
    case Unknown::PublicationGap:
      return "publication gap (changes while the table was not published are unknown)";
    case Unknown::UnknownPartition:
      return "changes of a relation that may have been a partition of the table";
  }
  return "?";
}

int TableInfo::column_index(std::string_view column) const {
  for (std::size_t i = 0; i < columns.size(); ++i)
    if (columns[i] == column) return static_cast<int>(i);
  return -1;
}

}  // namespace pgbust
