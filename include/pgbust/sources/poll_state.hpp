// The poll source's pure parts: the persisted watermark (one small JSON file per table under
// the state directory, written atomically: temp file, fsync, rename, fsync of the directory),
// comparing numbers in PostgreSQL text, and the bounded set of rows already invalidated.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pgbust/core/error.hpp"
#include "pgbust/core/loop.hpp"

namespace pgbust::poll {

inline constexpr int kStateVersion = 1;

// Where polling of one table resumes. Values are PostgreSQL text of the watermark columns,
// read back with the column's own type.
struct Watermark {
  std::string table;                     // "schema.table"
  std::vector<std::string> columns;      // the watermark columns, as configured
  std::vector<std::string> cursor;       // highest (updated_at, id...) or (id) seen; empty:
                                         // the table had no rows
  std::vector<std::string> floor;        // id watermarks: re-read from here (the overlap window)
  std::optional<std::string> max_id;     // [updated_at, id]: highest id seen (inserts above it)
  std::optional<std::int64_t> count;     // row count at the last delete check
  std::optional<std::string> count_max;  // highest id at the last delete check

  bool operator==(const Watermark&) const = default;
};

// "public.orders.watermark"; bytes other than letters, digits, '_' and '-' in the names are
// written as %XX so any table name gives one safe file name.
std::string state_file_name(std::string_view schema, std::string_view table);

// The file's text: {"version": 1, "table": ..., "watermark": [...], "cursor": [...], ...}.
std::string serialize(const Watermark& w);

// Reads serialize()'s text; throws Error saying what was expected (the caller names the file).
Watermark parse(std::string_view text);

struct Loaded {
  enum class Status { Missing, Ok, Corrupt } status = Status::Missing;
  Watermark watermark;  // when Ok
  std::string error;    // when Corrupt: "FILE: what is wrong; expected ..."
};

// Loads a state file; a missing file is not an error, an unreadable or corrupt one is.
Loaded load(const std::filesystem::path& file);

// Writes atomically: FILE.tmp, fsync, rename over FILE, fsync the directory (created if
// needed). Throws Error naming the file and the system's text.
void save(const std::filesystem::path& file, const Watermark& w);

// Compares two numbers in PostgreSQL's text form (integers and numerics exactly, whatever
// their size; anything else, such as floats with exponents, as long double): -1, 0 or 1.
int compare_number(std::string_view a, std::string_view b);

// Rows recently invalidated, so that the overlap window re-reading them does not repeat the
// same invalidation every round. Bounded: an entry not seen again for `ttl` (its row has left
// the window) is forgotten, and past `limit` the least recently seen go first (forgetting one
// only repeats a harmless invalidation).
class Seen {
 public:
  Seen(std::size_t limit, Clock::duration ttl)
      : limit_(std::max<std::size_t>(limit, 1)), ttl_(ttl) {}
  // True when `key` was recorded with this `version` (its updated_at text; "" for id-only
  // watermarks): it is then kept alive. Otherwise records it and returns false.
  bool check_and_add(const std::string& key, std::string_view version, TimePoint now);
  std::size_t size() const { return map_.size(); }

 private:
  struct Entry {
    std::string version;
    TimePoint at;
    std::list<std::string>::iterator pos;  // in order_
  };
  void expire(TimePoint now);

  std::size_t limit_;
  Clock::duration ttl_;
  std::unordered_map<std::string, Entry> map_;
  std::list<std::string> order_;  // least recently seen first
};

}  // namespace pgbust::poll
