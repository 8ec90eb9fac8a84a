// Time zones: TZif files (RFC 8536), their POSIX TZ footer rules and the per-rule-set cache
// (see tz.hpp).
#include "tz.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "civil.hpp"
#include "template.hpp"

namespace pgbust::rules::detail {

namespace {

constexpr std::int32_t kMaxRuleHours = 167;  // RFC 8536 3.3.1: -167 to 167 hours

bool digit(char c) {
  return c >= '0' && c <= '9';
}

// A POSIX TZ string reader with a cursor.
struct TzReader {
  std::string_view s;
  std::size_t i = 0;
  std::string error;

  bool fail(std::string msg) {
    error = std::move(msg) + " at offset " + std::to_string(i) + " of '" + std::string(s) + "'";
    return false;
  }
  bool at_end() const { return i >= s.size(); }
  char peek() const { return i < s.size() ? s[i] : '\0'; }

  // std or dst: 3+ letters, or <...> of letters, digits, '+' and '-'.
  bool name() {
    if (peek() == '<') {
      std::size_t start = ++i;
      while (i < s.size() && s[i] != '>') {
        char c = s[i];
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-'))
          return fail("unexpected character in <name>");
        ++i;
      }
      if (i >= s.size()) return fail("unterminated <name>");
      if (i - start < 3) return fail("zone abbreviation shorter than 3 characters");
      ++i;
      return true;
    }
    std::size_t start = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    if (i - start < 3) return fail("expected a zone abbreviation of at least 3 letters");
    return true;
  }
  // [+-]hh[:mm[:ss]] in seconds; hours up to max_hours.
  bool hms(std::int32_t& out, int max_hours) {
    int sign = 1;
    if (peek() == '+' || peek() == '-') sign = s[i++] == '-' ? -1 : 1;
    auto number = [&](int max, int& v) {
      std::size_t start = i;
      v = 0;
      while (i < s.size() && digit(s[i]) && i - start < 3) v = v * 10 + (s[i++] - '0');
      return i > start && v <= max;
    };
    int h = 0, m = 0, sec = 0;
    if (!number(max_hours, h)) return fail("expected hours from 0 to " + std::to_string(max_hours));
    if (peek() == ':') {
      ++i;
      if (!number(59, m)) return fail("expected minutes from 0 to 59");
      if (peek() == ':') {
        ++i;
        if (!number(59, sec)) return fail("expected seconds from 0 to 59");
      }
    }
    out = sign * (h * 3600 + m * 60 + sec);
    return true;
  }
  bool when(PosixTz::When& w) {
    auto number = [&](int& v) {
      std::size_t start = i;
      v = 0;
      while (i < s.size() && digit(s[i]) && i - start < 4) v = v * 10 + (s[i++] - '0');
      return i > start;
    };
    if (peek() == 'J') {
      ++i;
      w.form = PosixTz::When::Form::Julian1;
      if (!number(w.day) || w.day < 1 || w.day > 365) return fail("expected Jn with n 1-365");
    } else if (peek() == 'M') {
      ++i;
      w.form = PosixTz::When::Form::MonthWeekDay;
      if (!number(w.month) || w.month < 1 || w.month > 12) return fail("expected Mm with m 1-12");
      if (peek() != '.') return fail("expected '.' in Mm.w.d");
      ++i;
      if (!number(w.week) || w.week < 1 || w.week > 5) return fail("expected week 1-5 in Mm.w.d");
      if (peek() != '.') return fail("expected '.' in Mm.w.d");
      ++i;
      if (!number(w.day) || w.day > 6) return fail("expected day 0-6 in Mm.w.d");
    } else {
      w.form = PosixTz::When::Form::Julian0;
      if (!number(w.day) || w.day > 365) return fail("expected a rule date (Jn, n or Mm.w.d)");
    }
    w.time = 7200;
    if (peek() == '/') {
      ++i;
      if (!hms(w.time, kMaxRuleHours)) return false;
    }
    return true;
  }
};

// Days since 1970-01-01 of the day a rule names in `year`.
std::int64_t rule_day(const PosixTz::When& w, std::int64_t year) {
  std::int64_t jan1 = days_from_civil(year, 1, 1);
  switch (w.form) {
    case PosixTz::When::Form::Julian1:
      return jan1 + w.day - 1 + (is_leap(year) && w.day >= 60 ? 1 : 0);
    case PosixTz::When::Form::Julian0:
      return jan1 + w.day;
    case PosixTz::When::Form::MonthWeekDay:
      break;
  }
  std::int64_t first = days_from_civil(year, static_cast<unsigned>(w.month), 1);
  std::int64_t first_wd = weekday_sunday0(first);
  std::int64_t day = first + (w.day - first_wd + 7) % 7 + 7 * (w.week - 1);
  std::int64_t next_month = first + month_days(year, static_cast<unsigned>(w.month));
  while (day >= next_month) day -= 7;  // week 5: the last such day
  return day;
}

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}
std::int64_t be64(const unsigned char* p) {
  return static_cast<std::int64_t>((std::uint64_t(be32(p)) << 32) | be32(p + 4));
}

bool valid_zone_name(std::string_view n) {
  if (n.empty() || n.size() > 255 || n.front() == '/' || n.back() == '/') return false;
  std::size_t start = 0;
  for (std::size_t k = 0; k <= n.size(); ++k) {
    if (k == n.size() || n[k] == '/') {
      std::string_view part = n.substr(start, k - start);
      if (part.empty() || part == "." || part == "..") return false;
      start = k + 1;
      continue;
    }
    char c = n[k];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '+' ||
          c == '.'))
      return false;
  }
  return true;
}

bool read_file(const std::filesystem::path& p, std::string& out) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return false;
  out = text.str();
  return true;
}

bool ascii_iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k)
    if (std::tolower(static_cast<unsigned char>(a[k])) !=
        std::tolower(static_cast<unsigned char>(b[k])))
      return false;
  return true;
}

}  // namespace

std::optional<PosixTz> parse_posix_tz(std::string_view s, std::string* error) {
  TzReader r;
  r.s = s;
  PosixTz tz;
  auto fail = [&]() -> std::optional<PosixTz> {
    if (error) *error = r.error;
    return std::nullopt;
  };
  std::int32_t off = 0;
  if (!r.name() || !r.hms(off, 24)) return fail();
  tz.std_offset = -off;
  if (r.at_end()) return tz;
  if (!r.name()) return fail();
  tz.has_dst = true;
  tz.dst_offset = tz.std_offset + 3600;
  if (!r.at_end() && r.peek() != ',') {
    if (!r.hms(off, 24)) return fail();
    tz.dst_offset = -off;
  }
  if (r.at_end()) {  // no rule: tzcode's default, the US rules
    tz.start = PosixTz::When{PosixTz::When::Form::MonthWeekDay, 0, 3, 2, 7200};
    tz.end = PosixTz::When{PosixTz::When::Form::MonthWeekDay, 0, 11, 1, 7200};
    return tz;
  }
  if (r.peek() != ',') {
    r.fail("expected ',' and the start of daylight time");
    return fail();
  }
  ++r.i;
  if (!r.when(tz.start)) return fail();
  if (r.peek() != ',') {
    r.fail("expected ',' and the end of daylight time");
    return fail();
  }
  ++r.i;
  if (!r.when(tz.end)) return fail();
  if (!r.at_end()) {
    r.fail("unexpected text after the rule");
    return fail();
  }
  return tz;
}

std::int32_t PosixTz::offset_at(std::int64_t t) const {
  if (!has_dst) return std_offset;
  // The year as local standard time sees it; a rule's changes fall inside that year (or, for
  // times past 24 hours, just after it, which the comparison below still orders right).
  std::int64_t days = floor_div(t + std_offset, 86400);
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  std::int64_t on = rule_day(start, y) * 86400 + start.time - std_offset;
  std::int64_t off = rule_day(end, y) * 86400 + end.time - dst_offset;
  if (on < off) return (t >= on && t < off) ? dst_offset : std_offset;
  return (t >= off && t < on) ? std_offset : dst_offset;  // southern hemisphere
}

std::shared_ptr<const Zone> Zone::fixed(std::string name, std::int32_t offset) {
  auto z = std::make_shared<Zone>();
  z->name_ = std::move(name);
  z->offsets_.push_back(offset);
  return z;
}

std::shared_ptr<const Zone> Zone::from_tzif(std::string name, std::string_view bytes,
                                            std::string& error) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t size = bytes.size();
  struct Header {
    std::uint32_t isut, isstd, leap, time, type, chars;
  };
  auto header = [&](std::size_t at, Header& h) {
    if (at + 44 > size || bytes.substr(at, 4) != "TZif") return false;
    const unsigned char* c = p + at + 20;
    h = Header{be32(c), be32(c + 4), be32(c + 8), be32(c + 12), be32(c + 16), be32(c + 20)};
    return true;
  };
  auto block_size = [](const Header& h, std::size_t time_size) {
    return std::size_t(h.time) * time_size + h.time + std::size_t(h.type) * 6 + h.chars +
           std::size_t(h.leap) * (time_size + 4) + h.isstd + h.isut;
  };
  Header h{};
  if (!header(0, h)) {
    error = "not a TZif file (no 'TZif' header)";
    return nullptr;
  }
  char version = bytes[4];
  if (version != 0 && (version < '2' || version > '4')) {
    error = "unsupported TZif version";
    return nullptr;
  }
  if (h.time > (1u << 20) || h.type > 256 || h.chars > (1u << 16) || h.leap > (1u << 16) ||
      h.isstd > 256 || h.isut > 256) {
    error = "TZif header counts out of range";
    return nullptr;
  }
  std::size_t at = 44, time_size = 4;
  if (version != 0) {
    at += block_size(h, 4);
    if (!header(at, h)) {
      error = "TZif version 2+ file without its second header";
      return nullptr;
    }
    at += 44;
    time_size = 8;
  }
  if (h.time > (1u << 20) || h.type == 0 || h.type > 256 || h.chars == 0 ||
      (h.isstd != 0 && h.isstd != h.type) || (h.isut != 0 && h.isut != h.type) ||
      block_size(h, time_size) > size - std::min(size, at)) {
    error = "truncated or inconsistent TZif data block";
    return nullptr;
  }
  if (h.leap != 0) {
    error = "zones with leap seconds (the 'right/' zones) are not supported";
    return nullptr;
  }
  auto z = std::make_shared<Zone>();
  z->name_ = std::move(name);
  const unsigned char* c = p + at;
  for (std::uint32_t k = 0; k < h.time; ++k, c += time_size) {
    std::int64_t t = time_size == 8 ? be64(c) : static_cast<std::int32_t>(be32(c));
    if (!z->transitions_.empty() && t <= z->transitions_.back()) {
      error = "TZif transition times not ascending";
      return nullptr;
    }
    z->transitions_.push_back(t);
  }
  for (std::uint32_t k = 0; k < h.time; ++k, ++c) {
    if (*c >= h.type) {
      error = "TZif transition names a time type that does not exist";
      return nullptr;
    }
    z->type_of_.push_back(*c);
  }
  for (std::uint32_t k = 0; k < h.type; ++k, c += 6) {
    auto off = static_cast<std::int32_t>(be32(c));
    if (off < -89999 || off > 93599) {  // RFC 8536: -25:59:59 to 25:59:59
      error = "TZif UT offset out of range";
      return nullptr;
    }
    z->offsets_.push_back(off);
  }
  at += block_size(h, time_size);
  if (version != 0 && at < size) {
    // Footer: "\n" TZ-string "\n".
    if (p[at] != '\n') {
      error = "TZif footer does not start with a newline";
      return nullptr;
    }
    std::size_t nl = bytes.find('\n', at + 1);
    if (nl == std::string_view::npos) {
      error = "TZif footer does not end with a newline";
      return nullptr;
    }
    std::string_view rule = bytes.substr(at + 1, nl - at - 1);
    if (!rule.empty()) {
      std::string why;
      z->footer_ = parse_posix_tz(rule, &why);
      if (!z->footer_) {
        error = "TZif footer rule: " + why;
        return nullptr;
      }
    }
  }
  return z;
}

std::int32_t Zone::offset_at(std::int64_t t) const {
  if (transitions_.empty()) return footer_ ? footer_->offset_at(t) : offsets_[0];
  if (t < transitions_.front()) return offsets_[0];
  if (t >= transitions_.back() && footer_) return footer_->offset_at(t);
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), t);
  return offsets_[type_of_[static_cast<std::size_t>(it - transitions_.begin()) - 1]];
}

ZoneCache::ZoneCache() {
  const char* env = std::getenv("TZDIR");  // read only; never set
  dir_ = env && *env ? env : "/usr/share/zoneinfo";
}

std::shared_ptr<const Zone> ZoneCache::get(std::string_view name, std::string& error) {
  namespace fs = std::filesystem;
  if (auto it = zones_.find(name); it != zones_.end()) return it->second;
  if (!valid_zone_name(name)) {
    error = "'" + std::string(name) +
            "' is not a time zone name; expected a tz database name like Europe/Berlin or UTC";
    return nullptr;
  }
  auto remember = [&](std::shared_ptr<const Zone> z) {
    zones_.emplace(std::string(name), z);
    return z;
  };
  auto load = [&](const std::string& file) -> std::shared_ptr<const Zone> {
    std::string bytes;
    if (!read_file(fs::path(dir_) / file, bytes)) return nullptr;
    std::string why;
    auto z = Zone::from_tzif(std::string(name), bytes, why);
    if (!z) error = "cannot read time zone '" + file + "' from " + dir_ + ": " + why;
    return z;
  };
  std::error_code ec;
  fs::path path = fs::path(dir_) / std::string(name);
  if (fs::is_regular_file(path, ec)) {
    auto z = load(std::string(name));
    return z ? remember(z) : nullptr;
  }
  if (!names_read_) {
    names_read_ = true;
    for (fs::recursive_directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
      std::string rel = it->path().lexically_relative(dir_).generic_string();
      if (it->is_directory(ec)) {
        if (rel == "posix" || rel == "right") it.disable_recursion_pending();
        continue;
      }
      if (!valid_zone_name(rel) || rel == "posixrules" || rel == "localtime") continue;
      std::ifstream in(it->path(), std::ios::binary);
      char magic[4] = {};
      if (in.read(magic, 4) && std::string_view(magic, 4) == "TZif") names_.push_back(rel);
    }
    std::sort(names_.begin(), names_.end());
  }
  // PostgreSQL matches zone names without regard to case (europe/berlin is Europe/Berlin).
  for (const std::string& n : names_)
    if (ascii_iequal(n, name)) {
      auto z = load(n);
      return z ? remember(z) : nullptr;
    }
  if (name == "UTC" || name == "Etc/UTC") return remember(Zone::fixed(std::string(name), 0));
  std::vector<std::string_view> candidates(names_.begin(), names_.end());
  std::string hint = closest(name, candidates);
  error = "unknown time zone '" + std::string(name) + "'" +
          (hint.empty() ? "" : "; did you mean '" + hint + "'?") +
          (names_.empty() ? " (no zones in " + dir_ + "; is the tzdata package installed?)"
                          : " (zones are read from " + dir_ + "; TZDIR names another directory)");
  return nullptr;
}

}  // namespace pgbust::rules::detail
