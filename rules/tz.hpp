// Time zones for key templates: a reader for compiled tz database files (TZif, RFC 8536) and
// their POSIX TZ footer rules, and the UTC offset of a zone at a UTC instant. Internal to the
// rule engine.
//
// Zones are read once per rule set, when rules load (ZoneCache), and shared by every filter
// that names them; the per-change lookup (Zone::offset_at) reads only immutable data and never
// allocates. No process-wide TZ, setenv or localtime is touched: other threads run beside it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgbust::rules::detail {

// A POSIX TZ string as in a TZif footer (RFC 8536 section 3.3), e.g. "CET-1CEST,M3.5.0,M10.5.0/3".
struct PosixTz {
  // When a change happens: day form and the local time of day (seconds, may be negative or
  // past 24 hours as RFC 8536 allows).
  struct When {
    enum class Form : std::uint8_t { Julian1, Julian0, MonthWeekDay } form = Form::MonthWeekDay;
    int day = 0;              // Jn: 1-365 (Feb 29 never counted); n: 0-365; Mm.w.d: d (0 = Sunday)
    int month = 0, week = 0;  // Mm.w.d
    std::int32_t time = 7200;
  };
  std::int32_t std_offset = 0;  // seconds east of UTC (the negated POSIX offset)
  bool has_dst = false;
  std::int32_t dst_offset = 0;
  When start, end;  // into DST (local standard time), out of DST (local daylight time)

  // Offset in seconds east of UTC at UTC instant t.
  std::int32_t offset_at(std::int64_t t) const;
};

// Parses a POSIX TZ string; nullopt (and `error` set) when it is not one.
std::optional<PosixTz> parse_posix_tz(std::string_view s, std::string* error = nullptr);

class Zone {
 public:
  // From the bytes of a TZif file (versions 1-4; the 64-bit block when there is one).
  // nullptr and `error` set when the bytes are not a valid TZif file.
  static std::shared_ptr<const Zone> from_tzif(std::string name, std::string_view bytes,
                                               std::string& error);
  static std::shared_ptr<const Zone> fixed(std::string name, std::int32_t offset);

  const std::string& name() const { return name_; }
  // Offset in seconds east of UTC at UTC instant t (seconds since 1970-01-01 00:00:00 UTC).
  std::int32_t offset_at(std::int64_t t) const;

 private:
  std::string name_;
  std::vector<std::int64_t> transitions_;  // ascending UTC instants
  std::vector<std::uint8_t> type_of_;      // per transition: index into offsets_
  std::vector<std::int32_t> offsets_;      // per local time type
  std::optional<PosixTz> footer_;          // after the last transition
};

// Zones by name, read from one tz database directory ($TZDIR, else /usr/share/zoneinfo),
// each at most once. One per rule-set load.
class ZoneCache {
 public:
  ZoneCache();  // the directory from $TZDIR or the default
  explicit ZoneCache(std::string dir) : dir_(std::move(dir)) {}

  // The zone called `name` (as PostgreSQL's TimeZone setting names it, e.g. Europe/Berlin,
  // UTC, America/New_York); nullptr and `error` set (with the closest known name, if any).
  std::shared_ptr<const Zone> get(std::string_view name, std::string& error);
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::map<std::string, std::shared_ptr<const Zone>, std::less<>> zones_;
  std::vector<std::string> names_;  // every zone in dir_, read on the first unknown name
  bool names_read_ = false;
};

}  // namespace pgbust::rules::detail
