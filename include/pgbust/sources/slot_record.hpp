// The logical source's durable memory of its slot (promise 8, "no silent gaps"): which
// system and slot it streamed from and how far it confirmed, kept under the state directory.
// With it, a slot that vanished (dropped by a DBA, invalidated past max_slot_wal_keep_size)
// or that belongs to another system (a restore, a new primary) is a gap to widen, never a
// slot to re-create silently at the current WAL end.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "pgbust/core/change.hpp"

namespace pgbust::slot {

struct Record {
  std::string system_identifier;  // IDENTIFY_SYSTEM's systemid
  std::string database;
  std::string slot;
  std::string confirmed;  // the last position known applied ("0/16B3748"), informational
  std::string open_gap;   // a gap detected and not yet closed (its widening not yet applied)
  bool operator==(const Record&) const = default;
};

std::string serialize(const Record& r);
Record parse(std::string_view text);  // throws Error saying what was expected

// "<state_dir>/<slot>.slot" (slot names are [a-z0-9_]).
std::filesystem::path file_for(const std::string& state_dir, const std::string& slot);

struct Loaded {
  enum class Status { Missing, Ok, Corrupt } status = Status::Missing;
  Record record;
  std::string error;  // Corrupt: "FILE: what is wrong"
};
Loaded load(const std::filesystem::path& file);
void save(const std::filesystem::path& file, const Record& r);  // atomic; throws Error

// What the server says about the slot, read before streaming.
struct Facts {
  std::string slot, server;       // for messages: the slot name, "host:port dbname user"
  std::string system_identifier;  // of the server now
  bool exists = false;
  std::string wal_status;  // pg_replication_slots.wal_status ("lost": invalidated)
};

// on_gap: what to do when changes may have been missed.
enum class OnGap { Widen, Fail, WidenAtStart };
OnGap parse_on_gap(std::string_view s);  // "widen" | "fail" | "widen_at_start"

struct Decision {
  std::optional<std::string> gap;     // widen every rule once, for this reason (error level)
  std::optional<std::string> notice;  // say this (warning level), nothing to widen
};

// Decides from the facts and the record whether streaming from this slot (re-created when
// missing) may have missed changes. Throws Error, with what happened and what each remedy
// costs, for a slot PostgreSQL invalidated (wal_status lost) and for a gap under
// OnGap::Fail.
Decision decide(const Facts& facts, const Loaded& record, OnGap on_gap);

}  // namespace pgbust::slot
