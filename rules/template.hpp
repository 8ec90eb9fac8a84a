// Key templates: parsing `${...}` placeholders and their filters, SQL-style identifiers, and
// the value filters applied while rendering. Internal to the rule engine.
//
// Template syntax (DESIGN.md "Rules"):
//   ${col}  ${new.col}  ${old.col}   a column of the row image(s); ${"Col"} for a quoted name
//   ${table}  ${schema}  ${op}       metadata (unquoted and unqualified only)
//   ${col|f1|f2:arg}                 filters, applied left to right
//   ${(SUB-TEMPLATE)|f1|f2}          a group: the sub-template (literal text and placeholders,
//                                    each with its own filters) is rendered to one text, and
//                                    the group's filters apply to that whole text, e.g.
//                                    ${(${start_date}:${end_date}:${dept_id})|md5:8}
//                                    = hashlib.md5(f"{start}:{end}:{dept}".encode())
//                                      .hexdigest()[:8]
//   $$                               a literal '$'; a '$' not followed by '{' or '$' is literal
//                                    (inside a group, `$)` is a literal ')'; a bare ')' ends it)
// Column names follow SQL identifier rules: unquoted names are folded to lower case, "quoted"
// names are taken exactly ("" is a quote). Spaces around names, '|' and ':' are ignored.
//
// Filters (exact meanings, so keys match what applications compute):
//   lower, upper     ASCII letters only; other bytes unchanged
//   trim             strips ASCII spaces, tabs, CR and LF at both ends
//   date             the YYYY-MM-DD part of a date or timestamp text (2024-03-05 10:00:00+01
//                    -> 2024-03-05); the date as the text shows it, no time zone conversion
//                    (timestamptz values arrive rendered in UTC, so that is the UTC date)
//   month            YYYY-MM of a date or timestamp text
//   week_start       the ISO week's Monday on or before that date, as YYYY-MM-DD
//                    (Python: d - timedelta(days=d.weekday()))
//   tz:ZONE          a timestamptz text moved to the tz database zone ZONE, as PostgreSQL
//                    prints it under SET TimeZone = ZONE, DateStyle ISO:
//                    2024-01-01 02:30:00+00 -> 2024-01-01 03:30:00+01 (Europe/Berlin);
//                    fractional seconds kept; offsets +05:30, +00:53:28 when not whole hours
//   date:ZONE, month:ZONE, week_start:ZONE
//                    tz:ZONE, then that filter: the local date / month / week of the instant
//                    (Python: ts.astimezone(ZoneInfo(ZONE)).date())
//   md5[:N]          first N (1-32, default 32) lowercase hex digits of MD5 of the value text
//   sha256[:N]       first N (1-64, default 64) lowercase hex digits of SHA-256
//                    (Python: hashlib.md5(v.encode()).hexdigest()[:N])
//   default:TEXT     a NULL value becomes TEXT (later filters then apply to TEXT)
//   pybool           PostgreSQL boolean text t/f -> True/False (Python's str(bool))
// date, month, week_start and tz cannot read every text ('infinity', BC dates): such a value
// is treated as unknown and the key widens, never skipped.
// A rule's `timezone: ZONE` makes date, month, week_start and tz without an argument use ZONE;
// there a date or timestamp without time zone (no offset) is taken as written, as PostgreSQL's
// TimeZone leaves such values alone. With an explicit zone argument, and for tz always, a value
// without an offset cannot be placed in time: it is treated as unknown and the key widens.
// Zones come from $TZDIR or /usr/share/zoneinfo (names as PostgreSQL's TimeZone takes them,
// any case); an unknown zone is a load error.
//
// Groups render like a template of their own, with the row image(s) of the key around them:
// a NULL inside skips the key (or becomes the rule's null_as, as Python's f"{None}" gives
// "None"), and one unknown value inside makes the whole group unknown, so it widens to a
// single '*' (a digest of a partly known text is not a pattern). Groups nest at most
// kMaxGroupDepth deep.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tz.hpp"

namespace pgbust::rules::detail {

// A problem at a byte offset inside a template or condition string.
struct ParseError {
  std::size_t offset = 0;
  std::string message;
};

// Which row image a column reference reads: the event's image(s) (`${col}`, `x`), or one.
enum class Image : std::uint8_t { Row, New, Old };

// The distinct column names one rule reads; templates and conditions refer to them by index
// ("slot"), and the engine binds slots to a table layout once per TableInfo generation.
struct Slots {
  std::vector<std::string> names;
  int intern(const std::string& name);
};

struct ColumnRef {
  int slot = -1;
  Image image = Image::Row;
};

enum class FilterKind : std::uint8_t {
  Lower,
  Upper,
  Trim,
  Date,
  Month,
  WeekStart,
  Md5,
  Sha256,
  Default,
  PyBool,
  Tz
};

struct Filter {
  FilterKind kind = FilterKind::Lower;
  std::size_t n = 0;  // md5 / sha256 digits
  std::string arg;    // default's text; the zone name as written (tz, date, month, week_start)
  std::shared_ptr<const Zone> zone;  // tz, and date / month / week_start with a zone
  bool zone_from_rule = false;       // the zone is the rule's `timezone:`, not an argument
};

// Where the zone names of tz / date / month / week_start filters are looked up, and the
// rule's `timezone:` (the zone of those filters when they have no argument).
struct ZoneContext {
  ZoneCache* cache = nullptr;             // null: a cache for one parse_template call
  std::shared_ptr<const Zone> rule_zone;  // null: no rule-level timezone
};

// What a placeholder reads: a column (None), metadata, or a group (a sub-template).
enum class Meta : std::uint8_t { None, Table, Schema, Op, Group };

constexpr std::size_t kMaxGroupDepth = 4;

struct Part {
  bool placeholder = false;
  std::string literal;  // !placeholder
  Meta meta = Meta::None;
  ColumnRef ref;  // placeholder && meta == None
  std::vector<Filter> filters;
  std::string source;       // placeholder: "${...}" as written
  std::vector<Part> group;  // meta == Group: the sub-template's parts
};

// Calls f(const ColumnRef&) for every column a part reads, inside groups too.
template <class F>
void for_each_ref(const Part& p, F&& f) {
  if (!p.placeholder) return;
  if (p.meta == Meta::Group) {
    for (const Part& q : p.group) for_each_ref(q, f);
  } else if (p.meta == Meta::None) {
    f(p.ref);
  }
}

struct Template {
  std::string text;  // as written
  std::vector<Part> parts;
  bool uses_columns = false;  // some placeholder reads a row value
  bool uses_row = false;      // some placeholder reads the event's image(s) (${col})
  bool uses_old = false;      // reads old values: ${old.col}
  bool uses_new = false;      // reads new values: ${new.col}
};

// Parses `text`; column names are interned into `slots`. nullopt on success.
std::optional<ParseError> parse_template(std::string_view text, Slots& slots, Template& out,
                                         const ZoneContext& zones = {});

// An SQL identifier at s[i]: unquoted (folded to lower case) or "quoted". Advances i.
// Returns nullopt (i unchanged) when there is none; sets `error` for a malformed quoted one.
std::optional<std::string> parse_identifier(std::string_view s, std::size_t& i,
                                            std::optional<ParseError>& error,
                                            bool* was_quoted = nullptr);
// A whole string as one identifier (YAML `changed:` entries, table names' parts).
std::optional<std::string> identifier_from(std::string_view s, std::optional<ParseError>& error);

enum class FilterResult : std::uint8_t { Value, Null, Failed };

// Applies `filters` to a value (nullptr: NULL). On Value the result is in `out` (replaced);
// on Failed `out` says which filter could not read which text. `scratch` is reused storage.
FilterResult apply_filters(const std::vector<Filter>& filters, const std::string_view* value,
                           std::string& out, std::string& scratch);

// Closest of `candidates` to `word` (edit distance), or empty when none is close.
std::string closest(std::string_view word, const std::vector<std::string_view>& candidates);

std::string_view filter_name(FilterKind k);
// Every filter name the parser accepts (for the reference check).
std::vector<std::string_view> filter_names();

}  // namespace pgbust::rules::detail
