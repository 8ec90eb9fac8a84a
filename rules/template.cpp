// Key templates: the `${...}` parser, SQL identifiers and the value filters (see template.hpp).
#include "template.hpp"

#include <algorithm>
#include <charconv>

#include "civil.hpp"
#include "digest.hpp"

namespace pgbust::rules::detail {

int Slots::intern(const std::string& name) {
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int>(i);
  names.push_back(name);
  return static_cast<int>(names.size() - 1);
}

namespace {

bool ident_start(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
bool ident_char(unsigned char c) {
  return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}
char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
char ascii_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}
bool space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void skip_spaces(std::string_view s, std::size_t& i) {
  while (i < s.size() && space(s[i])) ++i;
}

struct FilterSpec {
  std::string_view name;
  FilterKind kind;
};
constexpr FilterSpec kFilters[] = {
    {"lower", FilterKind::Lower},     {"upper", FilterKind::Upper},
    {"trim", FilterKind::Trim},       {"date", FilterKind::Date},
    {"month", FilterKind::Month},     {"week_start", FilterKind::WeekStart},
    {"md5", FilterKind::Md5},         {"sha256", FilterKind::Sha256},
    {"default", FilterKind::Default}, {"pybool", FilterKind::PyBool},
    {"tz", FilterKind::Tz},
};

// Parses one filter `name[:arg]` starting at s[i]; stops before '|' or '}'.
std::optional<ParseError> parse_filter(std::string_view s, std::size_t& i, Filter& out,
                                       const ZoneContext& zones) {
  skip_spaces(s, i);
  std::size_t name_at = i;
  while (i < s.size() && ident_char(static_cast<unsigned char>(s[i]))) ++i;
  std::string name(s.substr(name_at, i - name_at));
  if (name.empty())
    return ParseError{name_at,
                      "expected a filter name after '|'; expected one of lower, upper, "
                      "trim, date[:ZONE], month[:ZONE], week_start[:ZONE], tz:ZONE, md5:N, "
                      "sha256:N, default:TEXT, pybool"};
  const FilterSpec* spec = nullptr;
  for (const auto& f : kFilters)
    if (f.name == name) spec = &f;
  if (spec == nullptr) {
    std::vector<std::string_view> names;
    for (const auto& f : kFilters) names.push_back(f.name);
    std::string hint = closest(name, names);
    return ParseError{name_at, "unknown filter '" + name + "'" +
                                   (hint.empty() ? ";" : "; did you mean '" + hint + "'?") +
                                   " expected one of lower, upper, trim, date[:ZONE], "
                                   "month[:ZONE], week_start[:ZONE], tz:ZONE, md5:N, "
                                   "sha256:N, default:TEXT, pybool"};
  }
  out = Filter{};
  out.kind = spec->kind;
  skip_spaces(s, i);
  bool has_arg = i < s.size() && s[i] == ':';
  std::size_t arg_at = i;
  std::string arg;
  if (has_arg) {
    ++i;
    arg_at = i;
    while (i < s.size() && s[i] != '|' && s[i] != '}') ++i;
    std::string_view raw = s.substr(arg_at, i - arg_at);
    while (!raw.empty() && space(raw.front())) {
      raw.remove_prefix(1);
      ++arg_at;
    }
    while (!raw.empty() && space(raw.back())) raw.remove_suffix(1);
    arg = std::string(raw);
  }
  switch (spec->kind) {
    case FilterKind::Md5:
    case FilterKind::Sha256: {
      std::size_t max = spec->kind == FilterKind::Md5 ? 32 : 64;
      out.n = max;
      if (!has_arg) break;
      std::size_t n = 0;
      auto [p, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), n);
      if (arg.empty() || ec != std::errc() || p != arg.data() + arg.size() || n < 1 || n > max)
        return ParseError{arg_at, std::string(spec->name) +
                                      " expects a number of hex digits from 1 to " +
                                      std::to_string(max) + ", got '" + arg + "'"};
      out.n = n;
      break;
    }
    case FilterKind::Default:
      if (!has_arg) return ParseError{name_at, "filter 'default' needs its text: default:TEXT"};
      out.arg = std::move(arg);
      break;
    case FilterKind::Tz:
    case FilterKind::Date:
    case FilterKind::Month:
    case FilterKind::WeekStart: {
      if (!has_arg) {
        if (zones.rule_zone) {
          out.zone = zones.rule_zone;
          out.zone_from_rule = true;
        } else if (spec->kind == FilterKind::Tz) {
          return ParseError{name_at,
                            "filter 'tz' needs a time zone: tz:ZONE (e.g. tz:Europe/Berlin), "
                            "or a rule-level 'timezone:'"};
        }
        break;
      }
      if (arg.empty())
        return ParseError{arg_at, "filter '" + name + "' expects a time zone after ':', e.g. " +
                                      name + ":Europe/Berlin"};
      std::string why;
      out.zone = zones.cache->get(arg, why);
      if (!out.zone) return ParseError{arg_at, "filter '" + name + "': " + why};
      out.arg = std::move(arg);
      break;
    }
    default:
      if (has_arg) return ParseError{arg_at - 1, "filter '" + name + "' takes no argument"};
  }
  return std::nullopt;
}

std::optional<ParseError> parse_parts(std::string_view s, std::size_t& i, Slots& slots, Template& t,
                                      std::vector<Part>& parts, std::size_t depth,
                                      const ZoneContext& zones);

// One `${...}` whose '$' is at s[start]; on success i is past the '}'. `depth`: how many
// groups it is inside.
std::optional<ParseError> parse_placeholder(std::string_view s, std::size_t start, std::size_t& i,
                                            Slots& slots, Part& part, Template& t,
                                            std::size_t depth, const ZoneContext& zones) {
  i = start + 2;
  skip_spaces(s, i);
  part.placeholder = true;
  if (i < s.size() && s[i] == '(') {
    if (depth >= kMaxGroupDepth)
      return ParseError{i, "groups nest at most " + std::to_string(kMaxGroupDepth) + " deep"};
    std::size_t open = i++;
    part.meta = Meta::Group;
    if (auto e = parse_parts(s, i, slots, t, part.group, depth + 1, zones)) return e;
    if (i >= s.size()) return ParseError{open, "unterminated group: expected ')' to close '${('"};
    if (part.group.empty())
      return ParseError{open, "empty group; expected text and placeholders inside '${(...)}'"};
    ++i;  // ')'
  } else {
    std::optional<ParseError> err;
    std::size_t name_at = i;
    bool quoted = false;
    auto first = parse_identifier(s, i, err, &quoted);
    if (err) return err;
    if (!first)
      return ParseError{name_at,
                        "expected a column name, table, schema, op or a (group) after '${'"};
    Image image = Image::Row;
    std::string column = *first;
    if (!quoted && i < s.size() && s[i] == '.') {
      if (column != "new" && column != "old")
        return ParseError{name_at,
                          "unknown qualifier '" + column + "'; expected new.COLUMN or old.COLUMN"};
      image = column == "new" ? Image::New : Image::Old;
      ++i;
      std::size_t col_at = i;
      auto second = parse_identifier(s, i, err);
      if (err) return err;
      if (!second) return ParseError{col_at, "expected a column name after '" + column + ".'"};
      column = *second;
    } else if (!quoted && (column == "table" || column == "schema" || column == "op")) {
      part.meta = column == "table" ? Meta::Table : column == "schema" ? Meta::Schema : Meta::Op;
    }
    if (part.meta == Meta::None) {
      part.ref = ColumnRef{slots.intern(column), image};
      t.uses_columns = true;
      if (image == Image::Row) t.uses_row = true;
      if (image == Image::Old) t.uses_old = true;
      if (image == Image::New) t.uses_new = true;
    }
  }
  for (;;) {
    skip_spaces(s, i);
    if (i >= s.size())
      return ParseError{start, "unterminated placeholder: expected '}' to close '${'"};
    if (s[i] == '}') {
      ++i;
      part.source = std::string(s.substr(start, i - start));
      return std::nullopt;
    }
    if (s[i] != '|')
      return ParseError{i, std::string("unexpected '") + s[i] +
                               "' in placeholder; expected '|' and a filter, or '}'"};
    ++i;
    Filter f;
    if (auto e = parse_filter(s, i, f, zones)) return e;
    part.filters.push_back(std::move(f));
  }
}

// Literal text and placeholders from s[i] into `parts`: to the end of `s` at depth 0; inside
// a group (depth > 0) up to the ')' that closes it (i is left on it).
std::optional<ParseError> parse_parts(std::string_view s, std::size_t& i, Slots& slots, Template& t,
                                      std::vector<Part>& parts, std::size_t depth,
                                      const ZoneContext& zones) {
  std::string literal;
  auto flush = [&] {
    if (literal.empty()) return;
    Part lit;
    lit.literal = std::move(literal);
    parts.push_back(std::move(lit));
    literal.clear();
  };
  while (i < s.size()) {
    if (depth > 0 && s[i] == ')') break;
    if (s[i] == '$' && i + 1 < s.size() && (s[i + 1] == '$' || (depth > 0 && s[i + 1] == ')'))) {
      literal.push_back(s[i + 1]);
      i += 2;
      continue;
    }
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      flush();
      Part part;
      if (auto e = parse_placeholder(s, i, i, slots, part, t, depth, zones)) return e;
      parts.push_back(std::move(part));
      continue;
    }
    literal.push_back(s[i++]);
  }
  flush();
  return std::nullopt;
}

// ---- dates --------------------------------------------------------------------------------

// The leading YYYY-MM-DD of a PostgreSQL date/timestamp text (ISO DateStyle). Years have at
// least 4 digits; " BC" dates and 'infinity' are not read.
bool read_date(std::string_view v, std::int64_t& y, unsigned& m, unsigned& d, std::size_t& len) {
  std::size_t i = 0;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
  if (i < 4 || i > 9) return false;
  y = 0;
  for (std::size_t k = 0; k < i; ++k) y = y * 10 + (v[k] - '0');
  auto two = [&](std::size_t at, unsigned& out) {
    if (at + 2 > v.size() || v[at] < '0' || v[at] > '9' || v[at + 1] < '0' || v[at + 1] > '9')
      return false;
    out = static_cast<unsigned>((v[at] - '0') * 10 + (v[at + 1] - '0'));
    return true;
  };
  if (i >= v.size() || v[i] != '-' || !two(i + 1, m)) return false;
  if (i + 3 >= v.size() || v[i + 3] != '-' || !two(i + 4, d)) return false;
  len = i + 6;
  if (len < v.size() && v[len] >= '0' && v[len] <= '9') return false;
  if (v.size() >= 3 && v.substr(v.size() - 3) == " BC") return false;
  if (y < 1 || m < 1 || m > 12 || d < 1) return false;
  return d <= month_days(y, m);
}

// Writes v (>= 0) zero-padded to `width` digits at p; returns the new end. Key rendering
// formats into small stack buffers and appends once: no allocation, few bounds checks.
char* put_padded(char* p, std::int64_t v, int width) {
  char digits[20];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0 && n < 20);
  for (int k = n; k < width; ++k) *p++ = '0';
  while (n > 0) *p++ = digits[--n];
  return p;
}

char* put2(char* p, std::int64_t v) {
  *p++ = static_cast<char>('0' + v / 10);
  *p++ = static_cast<char>('0' + v % 10);
  return p;
}

// YYYY-MM-DD (years of 4 or more digits) at p; at most 26 bytes.
char* put_date(char* p, std::int64_t y, unsigned m, unsigned d) {
  p = put_padded(p, y, 4);
  *p++ = '-';
  p = put2(p, m);
  *p++ = '-';
  return put2(p, d);
}

void append_date(std::string& out, std::int64_t y, unsigned m, unsigned d) {
  char buf[32];
  out.append(buf, put_date(buf, y, m, d));
}

// Monday on or before the day `days` (since 1970-01-01), as YYYY-MM-DD; false before year 1.
bool append_week_start(std::string& out, std::int64_t days) {
  std::int64_t weekday = ((days % 7) + 7 + 3) % 7;  // 1970-01-01 was a Thursday; Monday = 0
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days - weekday, y, m, d);
  if (y < 1) return false;
  append_date(out, y, m, d);
  return true;
}

bool week_start(std::string_view v, std::string& out) {
  std::int64_t y;
  unsigned m, d;
  std::size_t len;
  if (!read_date(v, y, m, d, len)) return false;
  out.clear();
  return append_week_start(out, days_from_civil(y, m, d));
}

// A timestamptz text as PostgreSQL prints it with DateStyle ISO:
// YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM[:SS]] (or -...). A date or a timestamp without time zone
// reads as NoOffset; 'infinity', BC and anything else as Bad.
enum class StampRead : std::uint8_t { Ok, NoOffset, Bad };
struct Stamp {
  std::int64_t y = 0;
  unsigned m = 0, d = 0;
  std::int64_t seconds = 0;  // of the day
  std::string_view frac;     // ".123456" as written, or empty
  std::int32_t offset = 0;   // seconds east of UTC
};

StampRead read_stamp(std::string_view v, Stamp& st) {
  std::size_t i = 0;
  if (!read_date(v, st.y, st.m, st.d, i)) return StampRead::Bad;
  if (i == v.size()) return StampRead::NoOffset;
  auto two = [&](int max, int& out) {
    if (i + 2 > v.size() || v[i] < '0' || v[i] > '9' || v[i + 1] < '0' || v[i + 1] > '9')
      return false;
    out = (v[i] - '0') * 10 + (v[i + 1] - '0');
    i += 2;
    return out <= max;
  };
  int hh, mm, ss;
  if (v[i] != ' ' && v[i] != 'T') return StampRead::Bad;
  ++i;
  if (!two(23, hh) || i >= v.size() || v[i++] != ':' || !two(59, mm) || i >= v.size() ||
      v[i++] != ':' || !two(59, ss))
    return StampRead::Bad;
  st.seconds = hh * 3600 + mm * 60 + ss;
  st.frac = {};
  if (i < v.size() && v[i] == '.') {
    std::size_t start = i++;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
    if (i == start + 1) return StampRead::Bad;
    st.frac = v.substr(start, i - start);
  }
  if (i == v.size()) return StampRead::NoOffset;
  if (v[i] != '+' && v[i] != '-') return StampRead::Bad;
  int sign = v[i++] == '-' ? -1 : 1;
  int oh, om = 0, os = 0;
  if (!two(99, oh)) return StampRead::Bad;
  if (i < v.size() && v[i] == ':') {
    ++i;
    if (!two(59, om)) return StampRead::Bad;
    if (i < v.size() && v[i] == ':') {
      ++i;
      if (!two(59, os)) return StampRead::Bad;
    }
  }
  if (i != v.size()) return StampRead::Bad;
  st.offset = sign * (oh * 3600 + om * 60 + os);
  return StampRead::Ok;
}

// The offset as PostgreSQL prints it (EncodeTimezone): +HH, +HH:MM when minutes are not zero,
// +HH:MM:SS when seconds are not zero; zero is +00. At most 10 bytes at p.
char* put_offset(char* p, std::int32_t offset) {
  *p++ = offset < 0 ? '-' : '+';
  std::int32_t a = offset < 0 ? -offset : offset;
  p = put2(p, a / 3600 % 100);
  if (a % 60 != 0) {
    *p++ = ':';
    p = put2(p, a / 60 % 60);
    *p++ = ':';
    p = put2(p, a % 60);
  } else if (a / 60 % 60 != 0) {
    *p++ = ':';
    p = put2(p, a / 60 % 60);
  }
  return p;
}

bool zoned_kind(FilterKind k) {
  return k == FilterKind::Tz || k == FilterKind::Date || k == FilterKind::Month ||
         k == FilterKind::WeekStart;
}

void fail_text(std::string& out, const Filter& f, std::string v,  // v by value: may alias out
               std::string_view why = {}) {
  out = "filter ";
  out.append(filter_name(f.kind));
  if (f.zone && !f.zone_from_rule) {
    out.push_back(':');
    out.append(f.zone->name());
  }
  out.append(" cannot read '");
  out.append(std::string_view(v).substr(0, 64));
  out.append(v.size() > 64 ? "...'" : "'");
  if (f.zone && f.zone_from_rule) {
    out.append(" in the rule's timezone ");
    out.append(f.zone->name());
  }
  if (!why.empty()) {
    out.append(": ");
    out.append(why);
  }
}

enum class Zoned : std::uint8_t { Done, AsWritten, Failed };

// tz / date / month / week_start with a zone: `v` moved to f.zone and rendered into `dst`.
// A value without an offset fails, except under the rule's own timezone, where date, month and
// week_start take it as written (as PostgreSQL's TimeZone setting leaves such values alone).
Zoned apply_zone(const Filter& f, std::string_view v, std::string& dst, std::string& out) {
  Stamp st;
  switch (read_stamp(v, st)) {
    case StampRead::Ok:
      break;
    case StampRead::NoOffset:
      if (f.zone_from_rule && f.kind != FilterKind::Tz) return Zoned::AsWritten;
      fail_text(out, f, std::string(v),
                "no UTC offset (a date or timestamp without time zone); a time zone filter "
                "needs a timestamptz");
      return Zoned::Failed;
    case StampRead::Bad:
      fail_text(out, f, std::string(v));
      return Zoned::Failed;
  }
  std::int64_t utc = days_from_civil(st.y, st.m, st.d) * 86400 + st.seconds - st.offset;
  std::int32_t offset = f.zone->offset_at(utc);
  std::int64_t local = utc + offset;
  std::int64_t days = floor_div(local, 86400);
  std::int64_t secs = local - days * 86400;
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  if (y < 1) {
    fail_text(out, f, std::string(v), "the date in that zone is BC");
    return Zoned::Failed;
  }
  dst.clear();
  if (f.kind == FilterKind::WeekStart) {
    if (append_week_start(dst, days)) return Zoned::Done;
    fail_text(out, f, std::string(v), "the week starts BC");
    return Zoned::Failed;
  }
  char buf[48];
  char* p = put_date(buf, y, m, d);
  if (f.kind == FilterKind::Month) p -= 3;  // YYYY-MM
  if (f.kind == FilterKind::Tz) {
    *p++ = ' ';
    p = put2(p, secs / 3600);
    *p++ = ':';
    p = put2(p, secs / 60 % 60);
    *p++ = ':';
    p = put2(p, secs % 60);
  }
  dst.append(buf, p);
  if (f.kind != FilterKind::Tz) return Zoned::Done;
  dst.append(st.frac);
  p = put_offset(buf, offset);
  dst.append(buf, p);
  return Zoned::Done;
}

}  // namespace

std::optional<std::string> parse_identifier(std::string_view s, std::size_t& i,
                                            std::optional<ParseError>& error, bool* was_quoted) {
  if (was_quoted) *was_quoted = false;
  if (i >= s.size()) return std::nullopt;
  if (s[i] == '"') {
    std::size_t start = i;
    std::string out;
    std::size_t k = i + 1;
    for (;;) {
      if (k >= s.size()) {
        error = ParseError{start, "unterminated quoted name: expected '\"'"};
        return std::nullopt;
      }
      if (s[k] == '"') {
        if (k + 1 < s.size() && s[k + 1] == '"') {
          out.push_back('"');
          k += 2;
          continue;
        }
        ++k;
        break;
      }
      out.push_back(s[k++]);
    }
    if (out.empty()) {
      error = ParseError{start, "empty quoted name"};
      return std::nullopt;
    }
    i = k;
    if (was_quoted) *was_quoted = true;
    return out;
  }
  if (!ident_start(static_cast<unsigned char>(s[i]))) return std::nullopt;
  std::string out;
  while (i < s.size() && ident_char(static_cast<unsigned char>(s[i])))
    out.push_back(ascii_lower(s[i++]));
  return out;
}

std::optional<std::string> identifier_from(std::string_view s, std::optional<ParseError>& error) {
  std::size_t i = 0;
  auto id = parse_identifier(s, i, error);
  if (error) return std::nullopt;
  if (!id) {
    error = ParseError{0, "expected a name (letters, digits, _; or a \"quoted\" name)"};
    return std::nullopt;
  }
  if (i != s.size()) {
    error = ParseError{i, std::string("unexpected '") + s[i] + "' in name"};
    return std::nullopt;
  }
  return id;
}

std::optional<ParseError> parse_template(std::string_view s, Slots& slots, Template& t,
                                         const ZoneContext& zones) {
  t = Template{};
  t.text = std::string(s);
  if (s.empty()) return ParseError{0, "empty key template"};
  std::size_t i = 0;
  if (zones.cache) return parse_parts(s, i, slots, t, t.parts, 0, zones);
  ZoneCache cache;
  ZoneContext local{&cache, zones.rule_zone};
  return parse_parts(s, i, slots, t, t.parts, 0, local);
}

std::vector<std::string_view> filter_names() {
  std::vector<std::string_view> out;
  for (const auto& f : kFilters) out.push_back(f.name);
  return out;
}

std::string_view filter_name(FilterKind k) {
  for (const auto& f : kFilters)
    if (f.kind == k) return f.name;
  return "?";
}

FilterResult apply_filters(const std::vector<Filter>& filters, const std::string_view* value,
                           std::string& out, std::string& scratch) {
  bool is_null = value == nullptr;
  std::string_view cur = is_null ? std::string_view() : *value;
  // `cur` points at the input, `out` or `scratch`; each step writes to the buffer it does not
  // point at, then swaps.
  std::string* dst = &out;
  std::string* other = &scratch;
  auto commit = [&] {
    cur = *dst;
    std::swap(dst, other);
  };
  for (const Filter& f : filters) {
    if (is_null) {
      if (f.kind != FilterKind::Default) continue;
      is_null = false;
      dst->assign(f.arg);
      commit();
      continue;
    }
    if (f.zone && zoned_kind(f.kind)) {
      switch (apply_zone(f, cur, *dst, out)) {
        case Zoned::Done:
          commit();
          continue;
        case Zoned::Failed:
          return FilterResult::Failed;
        case Zoned::AsWritten:
          break;
      }
    }
    switch (f.kind) {
      case FilterKind::Default:
        continue;
      case FilterKind::Tz:  // only without an offset under the rule's zone: never reached
        dst->assign(cur);
        break;
      case FilterKind::Lower:
      case FilterKind::Upper:
        dst->resize(cur.size());
        for (std::size_t k = 0; k < cur.size(); ++k)
          (*dst)[k] = f.kind == FilterKind::Lower ? ascii_lower(cur[k]) : ascii_upper(cur[k]);
        break;
      case FilterKind::Trim: {
        std::string_view v = cur;
        while (!v.empty() && space(v.front())) v.remove_prefix(1);
        while (!v.empty() && space(v.back())) v.remove_suffix(1);
        dst->assign(v);
        break;
      }
      case FilterKind::Date:
      case FilterKind::Month: {
        std::int64_t y;
        unsigned m, d;
        std::size_t len;
        if (!read_date(cur, y, m, d, len)) {
          fail_text(out, f, std::string(cur));
          return FilterResult::Failed;
        }
        dst->assign(cur.substr(0, f.kind == FilterKind::Date ? len : len - 3));
        break;
      }
      case FilterKind::WeekStart:
        if (!week_start(cur, *dst)) {
          fail_text(out, f, std::string(cur));
          return FilterResult::Failed;
        }
        break;
      case FilterKind::Md5:
        dst->clear();
        append_md5_hex(*dst, cur, f.n);
        break;
      case FilterKind::Sha256:
        dst->clear();
        append_sha256_hex(*dst, cur, f.n);
        break;
      case FilterKind::PyBool:
        if (cur == "t" || cur == "true") {
          dst->assign("True");
        } else if (cur == "f" || cur == "false") {
          dst->assign("False");
        } else {
          fail_text(out, f, std::string(cur));
          return FilterResult::Failed;
        }
        break;
    }
    commit();
  }
  if (is_null) return FilterResult::Null;
  if (cur.data() != out.data() || cur.size() != out.size()) {
    if (cur.data() == scratch.data()) {
      out.swap(scratch);
    } else {
      out.assign(cur);
    }
  }
  return FilterResult::Value;
}

std::string closest(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string best;
  std::size_t best_d = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (std::string_view c : candidates) {
    std::vector<std::size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (std::size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= word.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= c.size(); ++j) {
        std::size_t sub = prev[j - 1] + (ascii_lower(word[i - 1]) == ascii_lower(c[j - 1]) ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    if (prev[c.size()] < best_d) {
      best_d = prev[c.size()];
      best = std::string(c);
    }
  }
  return best;
}

}  // namespace pgbust::rules::detail

namespace pgbust::rules {

bool check_time_zone(std::string_view zone, std::string& error) {
  detail::ZoneCache zones;
  return zones.get(zone, error) != nullptr;
}

std::optional<std::string> timestamptz_as_utc(std::string_view value, std::string_view zone,
                                              std::string& error) {
  using namespace detail;
  error.clear();
  Stamp st;
  if (read_stamp(value, st) != StampRead::Ok) return std::nullopt;  // not a timestamptz
  ZoneCache zones;
  auto z = zones.get(zone, error);
  if (!z) return std::nullopt;
  std::int64_t utc = days_from_civil(st.y, st.m, st.d) * 86400 + st.seconds - st.offset;
  std::int32_t offset = z->offset_at(utc);
  char buf[48];
  if (offset != st.offset) {
    char* p = put_offset(buf, offset);
    error = "'" + std::string(value) + "' is not a time as " + std::string(zone) +
            " prints it: its UTC offset there at that instant is " + std::string(buf, p);
    return std::nullopt;
  }
  std::int64_t days = floor_div(utc, 86400);
  std::int64_t secs = utc - days * 86400;
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  if (y < 1) {
    error = "'" + std::string(value) + "' is BC in UTC";
    return std::nullopt;
  }
  char* p = put_date(buf, y, m, d);
  *p++ = ' ';
  p = put2(p, secs / 3600);
  *p++ = ':';
  p = put2(p, secs / 60 % 60);
  *p++ = ':';
  p = put2(p, secs % 60);
  std::string out(buf, p);
  out.append(st.frac);
  p = put_offset(buf, 0);
  out.append(buf, p);
  return out;
}

}  // namespace pgbust::rules
