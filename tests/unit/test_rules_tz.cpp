// Time zones for key templates: POSIX TZ rules, TZif files, the zone cache, the tz / date /
// month / week_start filters with a zone, and a rule's `timezone:`. Expected values come from
// `TZ=ZONE date -d @EPOCH '+%F %T%:::z'` (GNU date prints offsets the way PostgreSQL does)
// and a sweep against the C library over the same zone files.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <new>
#include <sstream>
#include <string>

#include "../../rules/template.hpp"
#include "../../rules/tz.hpp"
#include "test_rules_support.hpp"

// The counting operator new/delete below pair malloc with free; GCC cannot see that they match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

using namespace pgbust;
using namespace pgbust::rules::detail;
using namespace pgbust::test_rules;

namespace {

std::atomic<long> g_allocations{0};

std::int64_t epoch(const char* utc) {  // "YYYY-MM-DD HH:MM:SS" UTC
  std::tm tm{};
  REQUIRE(strptime(utc, "%Y-%m-%d %H:%M:%S", &tm) != nullptr);
  return static_cast<std::int64_t>(timegm(&tm));
}

std::shared_ptr<const Zone> zone(const std::string& name) {
  static ZoneCache cache;  // one for the test binary, as one per rule set in the daemon
  std::string error;
  auto z = cache.get(name, error);
  REQUIRE_MESSAGE(z, error);
  return z;
}

std::pair<FilterResult, std::string> filtered(const std::string& tmpl, const char* value) {
  Slots slots;
  Template t;
  auto err = parse_template(tmpl, slots, t);
  REQUIRE_MESSAGE(!err, tmpl << ": " << (err ? err->message : ""));
  REQUIRE(t.parts.size() == 1);
  std::string out, scratch;
  std::string_view v = value ? value : "";
  auto r = apply_filters(t.parts[0].filters, value ? &v : nullptr, out, scratch);
  return {r, out};
}

// Offset at t by the C library under the current TZ (set by the single-threaded test).
long libc_offset(std::int64_t t) {
  auto tt = static_cast<std::time_t>(t);
  std::tm tm{};
  if (localtime_r(&tt, &tm) == nullptr) return -1000000;
  return tm.tm_gmtoff;
}

}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

TEST_CASE("POSIX TZ rules (RFC 8536 footers)") {
  struct Case {
    const char* rule;
    const char* utc;
    std::int32_t offset;  // seconds east
  };
  const Case cases[] = {
      // Europe: last Sunday of March 01:00 UTC, last Sunday of October 01:00 UTC.
      {"CET-1CEST,M3.5.0,M10.5.0/3", "2024-03-31 00:59:59", 3600},
      {"CET-1CEST,M3.5.0,M10.5.0/3", "2024-03-31 01:00:00", 7200},
      {"CET-1CEST,M3.5.0,M10.5.0/3", "2024-10-27 00:59:59", 7200},
      {"CET-1CEST,M3.5.0,M10.5.0/3", "2024-10-27 01:00:00", 3600},
      {"EST5EDT,M3.2.0,M11.1.0", "2024-03-10 06:59:59", -18000},
      {"EST5EDT,M3.2.0,M11.1.0", "2024-03-10 07:00:00", -14400},
      {"EST5EDT,M3.2.0,M11.1.0", "2024-11-03 05:59:59", -14400},
      {"EST5EDT,M3.2.0,M11.1.0", "2024-11-03 06:00:00", -18000},
      {"EST5EDT", "2024-07-01 00:00:00", -14400},  // no rule: the US rules, as tzcode
      {"<+0530>-5:30", "2024-06-01 00:00:00", 19800},
      {"<-03>3", "2024-06-01 00:00:00", -10800},
      // Israel: Thursday of the 4th week at 26:00 = Friday 02:00.
      {"IST-2IDT,M3.4.4/26,M10.5.0", "2024-03-28 23:59:59", 7200},
      {"IST-2IDT,M3.4.4/26,M10.5.0", "2024-03-29 00:00:00", 10800},
      {"IST-2IDT,M3.4.4/26,M10.5.0", "2024-10-26 22:59:59", 10800},
      {"IST-2IDT,M3.4.4/26,M10.5.0", "2024-10-26 23:00:00", 7200},
      // Jn never counts Feb 29 (J60 is March 1); n counts it (59 is Feb 29 in a leap year).
      {"XXX3YYY,J60/2,J300/2", "2024-03-01 04:59:59", -10800},
      {"XXX3YYY,J60/2,J300/2", "2024-03-01 05:00:00", -7200},
      {"XXX3YYY,59/2,300/2", "2024-02-29 04:59:59", -10800},
      {"XXX3YYY,59/2,300/2", "2024-02-29 05:00:00", -7200},
      {"XXX3YYY,59/2,300/2", "2023-02-28 12:00:00", -10800},
      {"XXX3YYY,59/2,300/2", "2023-03-01 05:00:00", -7200},
      // Negative rule times (America/Nuuk's footer).
      {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2024-03-31 00:59:59", -7200},
      {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2024-03-31 01:00:00", -3600},
      {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2024-10-27 00:59:59", -3600},
      {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2024-10-27 01:00:00", -7200},
      // Daylight time all year.
      {"EST5EDT4,0/0,J365/25", "2024-01-01 04:00:00", -14400},
      {"EST5EDT4,0/0,J365/25", "2024-07-01 00:00:00", -14400},
      {"EST5EDT4,0/0,J365/25", "2024-12-31 23:59:59", -14400},
      // Southern hemisphere.
      {"AEST-10AEDT,M10.1.0,M4.1.0/3", "2024-04-06 15:59:59", 39600},
      {"AEST-10AEDT,M10.1.0,M4.1.0/3", "2024-04-06 16:00:00", 36000},
      {"AEST-10AEDT,M10.1.0,M4.1.0/3", "2024-10-05 15:59:59", 36000},
      {"AEST-10AEDT,M10.1.0,M4.1.0/3", "2024-10-05 16:00:00", 39600},
      {"<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45", "2024-06-01 00:00:00", 45900},
      {"<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45", "2024-01-01 00:00:00", 49500},
  };
  for (const auto& c : cases) {
    CAPTURE(c.rule);
    CAPTURE(c.utc);
    std::string error;
    auto tz = parse_posix_tz(c.rule, &error);
    REQUIRE_MESSAGE(tz, error);
    CHECK(tz->offset_at(epoch(c.utc)) == c.offset);
  }
  for (const char* bad : {"", "CE-1", "CET", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0",
                          "CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,J0,J365",
                          "CET-1CEST,M3.5.0,M10.5.0/168", "<+05", "CET-1 x", "CET-25"}) {
    CAPTURE(bad);
    std::string error;
    CHECK(!parse_posix_tz(bad, &error));
    CHECK(!error.empty());
  }
}

TEST_CASE("zone files: offsets at known instants") {
  struct Case {
    const char* zone;
    const char* utc;
    std::int32_t offset;
  };
  const Case cases[] = {
      {"Europe/Berlin", "2024-01-01 02:30:00", 3600},
      {"Europe/Berlin", "2024-03-31 00:59:59", 3600},
      {"Europe/Berlin", "2024-03-31 01:00:00", 7200},
      {"Europe/Berlin", "2024-10-27 00:59:59", 7200},
      {"Europe/Berlin", "2024-10-27 01:00:00", 3600},
      {"Europe/Berlin", "1890-01-01 00:00:00", 3208},  // local mean time +00:53:28
      {"Europe/Berlin", "2040-03-25 00:59:59", 3600},  // past 2037: the footer rule
      {"Europe/Berlin", "2040-03-25 01:00:00", 7200},
      {"Europe/Berlin", "2099-10-25 00:59:59", 7200},
      {"Europe/Berlin", "2099-10-25 01:00:00", 3600},
      {"America/New_York", "2024-03-10 06:59:59", -18000},
      {"America/New_York", "2024-03-10 07:00:00", -14400},
      {"America/New_York", "2024-11-03 05:59:59", -14400},
      {"America/New_York", "2024-11-03 06:00:00", -18000},
      {"America/New_York", "2050-11-06 05:59:59", -14400},
      {"America/New_York", "2050-11-06 06:00:00", -18000},
      {"Asia/Kolkata", "2024-01-01 20:00:00", 19800},
      {"Asia/Kolkata", "1941-12-01 00:00:00", 23400},  // +06:30 in the war years
      {"Asia/Kathmandu", "2024-01-01 00:00:00", 20700},
      {"Asia/Kathmandu", "1980-01-01 00:00:00", 19800},
      {"Europe/Moscow", "2011-03-26 22:59:59", 10800},  // +03 -> +04 for good ...
      {"Europe/Moscow", "2011-03-26 23:00:00", 14400},
      {"Europe/Moscow", "2014-10-25 21:59:59", 14400},  // ... and back to +03
      {"Europe/Moscow", "2014-10-25 22:00:00", 10800},
      {"Europe/Moscow", "2024-06-01 00:00:00", 10800},
      {"Australia/Sydney", "2045-04-01 15:59:59", 39600},
      {"Australia/Sydney", "2045-04-01 16:00:00", 36000},
      {"America/Nuuk", "2040-03-25 00:59:59", -7200},
      {"America/Nuuk", "2040-03-25 01:00:00", -3600},
      {"UTC", "2024-01-01 00:00:00", 0},
  };
  for (const auto& c : cases) {
    CAPTURE(c.zone);
    CAPTURE(c.utc);
    CHECK(zone(c.zone)->offset_at(epoch(c.utc)) == c.offset);
  }
}

TEST_CASE("zone files: a sweep from 1850 to 2150 agrees with the C library") {
  // The C library reads the same files; TZ is set only here, in a single-threaded test.
  const char* zones[] = {"Europe/Berlin",     "America/New_York", "Asia/Kolkata",
                         "Australia/Sydney",  "America/Nuuk",     "Europe/Dublin",
                         "Africa/Casablanca", "America/Santiago", "Asia/Jerusalem",
                         "Pacific/Chatham",   "Europe/Moscow",    "America/Sao_Paulo"};
  const char* old_tz = std::getenv("TZ");
  std::string saved = old_tz ? old_tz : "";
  for (const char* name : zones) {
    CAPTURE(name);
    auto z = zone(name);
    setenv("TZ", name, 1);
    tzset();
    int mismatches = 0;
    // Every 7 days, 1 hour and 7 seconds: all times of day and weekdays over the years.
    for (std::int64_t t = epoch("1850-01-01 00:00:00"); t < epoch("2150-01-01 00:00:00");
         t += 7 * 86400 + 3607) {
      if (z->offset_at(t) != libc_offset(t) && ++mismatches <= 3)
        CHECK_MESSAGE(false,
                      "t=" << t << " ours=" << z->offset_at(t) << " libc=" << libc_offset(t));
    }
    CHECK(mismatches == 0);
  }
  if (old_tz)
    setenv("TZ", saved.c_str(), 1);
  else
    unsetenv("TZ");
  tzset();
}

TEST_CASE("TZif: version 1, slim files and broken bytes") {
  auto be32 = [](std::string& s, std::uint32_t v) {
    for (int k = 3; k >= 0; --k) s.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
  };
  auto header = [&](std::string& s, char version, std::uint32_t times, std::uint32_t types,
                    std::uint32_t chars) {
    s += "TZif";
    s.push_back(version);
    s += std::string(15, '\0');
    for (std::uint32_t v : {0u, 0u, 0u, times, types, chars}) be32(s, v);
  };
  std::string error;
  SUBCASE("version 1: 32-bit transitions only") {
    std::string f;
    header(f, '\0', 1, 2, 8);
    be32(f, 1000);  // transition at t=1000 to type 1
    f.push_back('\1');
    be32(f, 0), f += '\0', f += '\0';      // type 0: UTC
    be32(f, 19800), f += '\0', f += '\4';  // type 1: +05:30
    f += std::string("UTC\0IST\0", 8);
    auto z = Zone::from_tzif("v1", f, error);
    REQUIRE_MESSAGE(z, error);
    CHECK(z->offset_at(999) == 0);
    CHECK(z->offset_at(1000) == 19800);
    CHECK(z->offset_at(epoch("2100-01-01 00:00:00")) == 19800);
  }
  SUBCASE("a slim version 2 file: no transitions, only the footer rule") {
    std::string f;
    header(f, '2', 0, 1, 4);  // v1 block
    be32(f, 0), f += '\0', f += '\0', f += std::string("UTC\0", 4);
    header(f, '2', 0, 1, 4);  // v2 block
    be32(f, 3600), f += '\0', f += '\0', f += std::string("CET\0", 4);
    f += "\nCET-1CEST,M3.5.0,M10.5.0/3\n";
    auto z = Zone::from_tzif("slim", f, error);
    REQUIRE_MESSAGE(z, error);
    CHECK(z->offset_at(epoch("2024-07-01 00:00:00")) == 7200);
    CHECK(z->offset_at(epoch("2024-01-01 00:00:00")) == 3600);
  }
  SUBCASE("broken bytes are errors, never crashes") {
    std::string good;
    header(good, '2', 0, 1, 4);
    be32(good, 0), good += '\0', good += '\0', good += std::string("UTC\0", 4);
    header(good, '2', 0, 1, 4);
    be32(good, 0), good += '\0', good += '\0', good += std::string("UTC\0", 4);
    good += "\nUTC0\n";
    REQUIRE(Zone::from_tzif("good", good, error));
    for (std::size_t n = 0; n < good.size() - 1; ++n) {
      CAPTURE(n);
      error.clear();
      auto z = Zone::from_tzif("cut", std::string_view(good).substr(0, n), error);
      // A cut inside the footer is still a valid file without a footer rule or an error.
      if (!z) CHECK(!error.empty());
    }
    CHECK(
        !Zone::from_tzif("x", "not a zone file at all, but long enough for a header ....", error));
    CHECK(error.find("TZif") != std::string::npos);
    std::string bad_footer = good;
    bad_footer.replace(bad_footer.size() - 5, 4, "U0");
    CHECK(!Zone::from_tzif("x", bad_footer, error));
  }
}

TEST_CASE("zone cache: names, case, suggestions, one read per name") {
  ZoneCache cache;
  std::string error;
  auto a = cache.get("Europe/Berlin", error);
  auto b = cache.get("Europe/Berlin", error);
  REQUIRE(a);
  CHECK(a == b);                                   // shared
  auto lower = cache.get("europe/berlin", error);  // PostgreSQL ignores case
  REQUIRE_MESSAGE(lower, error);
  CHECK(lower->offset_at(epoch("2024-07-01 00:00:00")) == 7200);
  CHECK(!cache.get("Europe/Berlim", error));
  CHECK_MESSAGE(error.find("unknown time zone 'Europe/Berlim'; did you mean 'Europe/Berlin'?") !=
                    std::string::npos,
                error);
  for (const char* bad : {"../../etc/passwd", "/etc/localtime", "Europe/../Europe/Berlin", ""}) {
    CAPTURE(bad);
    CHECK(!cache.get(bad, error));
    CHECK(error.find("is not a time zone name") != std::string::npos);
  }
  ZoneCache empty("/nonexistent-zoneinfo");
  CHECK(empty.get("UTC", error));  // UTC works without tzdata
  CHECK(!empty.get("Europe/Berlin", error));
  CHECK(error.find("is the tzdata package installed?") != std::string::npos);
}

TEST_CASE("filters: tz, date, month and week_start in a zone") {
  struct Case {
    std::string tmpl;
    const char* value;
    FilterResult result;
    std::string out;
  };
  const Case cases[] = {
      {"${x|tz:Europe/Berlin}", "2024-01-01 02:30:00+00", FilterResult::Value,
       "2024-01-01 03:30:00+01"},
      {"${x|tz:Europe/Berlin}", "2024-01-01 02:30:00.123456+00", FilterResult::Value,
       "2024-01-01 03:30:00.123456+01"},
      {"${x|tz:Europe/Berlin}", "2024-01-01 02:30:00.5+00", FilterResult::Value,
       "2024-01-01 03:30:00.5+01"},
      {"${x|tz:Europe/Berlin}", "2024-03-31 00:59:59.999999+00", FilterResult::Value,
       "2024-03-31 01:59:59.999999+01"},
      {"${x|tz:Europe/Berlin}", "2024-03-31 01:00:00+00", FilterResult::Value,
       "2024-03-31 03:00:00+02"},
      {"${x|tz:Europe/Berlin}", "2024-10-27 00:59:59+00", FilterResult::Value,
       "2024-10-27 02:59:59+02"},
      {"${x|tz:Europe/Berlin}", "2024-10-27 01:00:00+00", FilterResult::Value,
       "2024-10-27 02:00:00+01"},
      {"${x|tz:Europe/Berlin}", "1890-01-01 00:00:00+00", FilterResult::Value,
       "1890-01-01 00:53:28+00:53:28"},
      {"${x|tz:Europe/Berlin}", "2099-10-25 01:00:00+00", FilterResult::Value,
       "2099-10-25 02:00:00+01"},
      // Offsets of other sessions are read too: +HH, +HH:MM, +HH:MM:SS, negative.
      {"${x|tz:UTC}", "2024-01-01 03:30:00+01", FilterResult::Value, "2024-01-01 02:30:00+00"},
      {"${x|tz:UTC}", "2024-01-01 07:30:00+05:30", FilterResult::Value, "2024-01-01 02:00:00+00"},
      {"${x|tz:UTC}", "2023-12-31 21:30:00-05", FilterResult::Value, "2024-01-01 02:30:00+00"},
      {"${x|tz:UTC}", "1890-01-01 00:53:28+00:53:28", FilterResult::Value,
       "1890-01-01 00:00:00+00"},
      {"${x|tz:UTC}", "2024-01-01 00:00:00-00:30:15", FilterResult::Value,
       "2024-01-01 00:30:15+00"},
      {"${x|tz:America/New_York}", "2024-01-01 02:30:00+00", FilterResult::Value,
       "2023-12-31 21:30:00-05"},
      {"${x|tz:America/New_York}", "2024-11-03 05:59:59+00", FilterResult::Value,
       "2024-11-03 01:59:59-04"},
      {"${x|tz:America/New_York}", "2024-11-03 06:00:00+00", FilterResult::Value,
       "2024-11-03 01:00:00-05"},
      {"${x|tz:Asia/Kolkata}", "2024-01-01 20:00:00+00", FilterResult::Value,
       "2024-01-02 01:30:00+05:30"},
      {"${x|tz:Asia/Kathmandu}", "2024-01-01 00:00:00+00", FilterResult::Value,
       "2024-01-01 05:45:00+05:45"},
      {"${x|tz:Europe/Moscow}", "2011-03-26 23:00:00+00", FilterResult::Value,
       "2011-03-27 03:00:00+04"},
      {"${x|tz:Europe/Berlin}", "12024-01-01 00:00:00+00", FilterResult::Value,
       "12024-01-01 01:00:00+01"},
      // The issue's case: a New York app's day of 2024-01-01 02:30 UTC is 2023-12-31.
      {"${x|date:America/New_York}", "2024-01-01 02:30:00+00", FilterResult::Value, "2023-12-31"},
      {"${x|date}", "2024-01-01 02:30:00+00", FilterResult::Value, "2024-01-01"},
      {"${x|date:Europe/Berlin}", "2024-12-31 23:30:00+00", FilterResult::Value, "2025-01-01"},
      {"${x|month:Europe/Berlin}", "2024-12-31 23:30:00+00", FilterResult::Value, "2025-01"},
      {"${x|month:America/New_York}", "2024-03-01 03:00:00+00", FilterResult::Value, "2024-02"},
      {"${x|week_start:Europe/Berlin}", "2024-01-07 23:30:00+00", FilterResult::Value,
       "2024-01-08"},  // Sunday night in UTC is Monday in Berlin
      {"${x|week_start:America/New_York}", "2024-01-08 02:00:00+00", FilterResult::Value,
       "2024-01-01"},
      {"${x|tz:Europe/Berlin|date}", "2024-12-31 23:30:00+00", FilterResult::Value, "2025-01-01"},
      {"${x|tz:Asia/Kolkata|md5:8}", "2024-01-01 20:00:00+00", FilterResult::Value, "2aa26020"},
      // Values without an offset, and texts that are no timestamp, fail (the key widens).
      {"${x|tz:Europe/Berlin}", "2024-01-01", FilterResult::Failed,
       "filter tz:Europe/Berlin cannot read '2024-01-01': no UTC offset (a date or timestamp "
       "without time zone); a time zone filter needs a timestamptz"},
      {"${x|date:Europe/Berlin}", "2024-01-01 10:00:00", FilterResult::Failed,
       "filter date:Europe/Berlin cannot read '2024-01-01 10:00:00': no UTC offset (a date or "
       "timestamp without time zone); a time zone filter needs a timestamptz"},
      {"${x|tz:Europe/Berlin}", "infinity", FilterResult::Failed,
       "filter tz:Europe/Berlin cannot read 'infinity'"},
      {"${x|tz:Europe/Berlin}", "2024-01-01 10:00:00+01 BC", FilterResult::Failed,
       "filter tz:Europe/Berlin cannot read '2024-01-01 10:00:00+01 BC'"},
      {"${x|tz:Europe/Berlin}", "2024-01-01 24:00:00+00", FilterResult::Failed,
       "filter tz:Europe/Berlin cannot read '2024-01-01 24:00:00+00'"},
      {"${x|tz:Europe/Berlin}", "2024-01-01 10:00:00+0", FilterResult::Failed,
       "filter tz:Europe/Berlin cannot read '2024-01-01 10:00:00+0'"},
      {"${x|tz:Europe/Berlin}", "2024-01-01 10:00:00.+00", FilterResult::Failed,
       "filter tz:Europe/Berlin cannot read '2024-01-01 10:00:00.+00'"},
      {"${x|tz:America/New_York}", "0001-01-01 00:00:00+00", FilterResult::Failed,
       "filter tz:America/New_York cannot read '0001-01-01 00:00:00+00': the date in that "
       "zone is BC"},
      {"${x|tz:Europe/Berlin}", nullptr, FilterResult::Null, ""},
      {"${x|default:none|tz:Europe/Berlin}", nullptr, FilterResult::Failed,
       "filter tz:Europe/Berlin cannot read 'none'"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.tmpl);
    CAPTURE(c.value ? c.value : "NULL");
    auto [r, out] = filtered(c.tmpl, c.value);
    CHECK(r == c.result);
    if (r != FilterResult::Null) CHECK(out == c.out);
  }
}

TEST_CASE("filters: zone argument errors point at the zone") {
  struct Case {
    std::string text;
    std::size_t offset;
    std::string message;
  };
  const Case cases[] = {
      {"k:${d|date:Europe/Berlim}", 11,
       "filter 'date': unknown time zone 'Europe/Berlim'; did you mean 'Europe/Berlin'?"},
      {"k:${d|tz:America/New_Yrok}", 9, "did you mean 'America/New_York'?"},
      {"k:${d| week_start : Asia/Kolkta }", 20, "did you mean 'Asia/Kolkata'?"},
      {"k:${d|tz}", 6, "filter 'tz' needs a time zone: tz:ZONE"},
      {"k:${d|month:}", 12, "expects a time zone after ':'"},
      {"k:${d|tz:../../etc/passwd}", 9, "is not a time zone name"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    Slots slots;
    Template t;
    auto err = parse_template(c.text, slots, t);
    REQUIRE(err);
    CHECK(err->offset == c.offset);
    CHECK_MESSAGE(err->message.find(c.message) != std::string::npos, err->message);
  }
}

TEST_CASE("filters: a zone conversion does not allocate once buffers are warm") {
  Slots slots;
  Template t;
  REQUIRE(
      !parse_template("${x|tz:Europe/Berlin}:${x|week_start:America/New_York}:${x|date:"
                      "Australia/Sydney}:${x|month:Asia/Kolkata}",
                      slots, t));
  std::string out, scratch;
  std::string_view values[] = {"2024-01-01 02:30:00.123456+00", "2045-04-01 16:00:00+00",
                               "1890-01-01 00:53:28+00:53:28"};
  for (const Part& p : t.parts)
    if (p.placeholder)
      for (auto& v : values) apply_filters(p.filters, &v, out, scratch);
  long before = g_allocations.load();
  for (int round = 0; round < 100; ++round)
    for (const Part& p : t.parts)
      if (p.placeholder)
        for (auto& v : values)
          CHECK(apply_filters(p.filters, &v, out, scratch) == FilterResult::Value);
  CHECK(g_allocations.load() == before);
}

TEST_CASE("rules: timezone: makes date, month, week_start and tz use the rule's zone") {
  auto rules = load_rules(R"(
version: 1
rules:
  - name: berlin
    table: app.events
    timezone: Europe/Berlin
    delete: ["d:${at|date}", "m:${at|month}", "w:${at|week_start}", "t:${at|tz}",
             "u:${at|date:UTC}", "day:${day|date}", "ny:${at|date:America/New_York}"]
  - name: plain
    table: app.events
    delete: "p:${at|date}"
)");
  Fixture f("app", "events", {"id", "at", "day"}, {"id"});
  rules::Engine engine(rules, {});
  auto keys = f.run(
      engine, Op::Insert, nullptr,
      f.row({{"id", val("1")}, {"at", val("2024-12-31 23:30:00+00")}, {"day", val("2024-12-31")}}));
  CHECK(keys ==
        std::vector<std::string>{"delete d:2025-01-01", "delete m:2025-01", "delete w:2024-12-30",
                                 "delete t:2025-01-01 00:30:00+01", "delete u:2024-12-31",
                                 "delete day:2024-12-31",  // a date has no zone: taken as written
                                 "delete ny:2024-12-31", "delete p:2024-12-31"});
  CHECK(!f.last.has_widened());

  SUBCASE("tz of a value without an offset widens, naming the filter") {
    auto more = load_rules(R"(
version: 1
rules:
  - name: wrong-column
    table: app.events
    timezone: Europe/Berlin
    delete: "t:${day|tz}"
)");
    rules::Engine e2(more, {});
    auto k2 = f.run(e2, Op::Insert, nullptr, f.row({{"id", val("1")}, {"day", val("2024-12-31")}}));
    CHECK(k2 == std::vector<std::string>{"delete_pattern t:*"});
    CHECK_MESSAGE(f.last.widened_line().find("no UTC offset") != std::string::npos,
                  f.last.widened_line());
  }
}

TEST_CASE("rules: an unknown zone is a load error at the zone, with a suggestion") {
  auto r = rules::RuleSet::parse(R"(version: 1
rules:
  - name: a
    table: app.events
    delete: "d:${at|date:Europe/Berlim}"
  - name: b
    table: app.events
    timezone: Amercia/New_York
    delete: ["d:${at|date}", "t:${at|tz}"]
  - name: c
    table: app.events
    delete: "t:${at|tz}"
)",
                                 "r.yaml");
  CHECK(!r.rules);
  std::string all;
  for (const auto& e : r.errors) all += e.str() + "\n";
  std::string dir = ZoneCache().dir();
  CHECK(all ==
        "r.yaml:5:26: error: delete: filter 'date': unknown time zone 'Europe/Berlim'; did you "
        "mean 'Europe/Berlin'? (zones are read from " +
            dir +
            "; TZDIR names another "
            "directory)\n"
            "r.yaml:8:15: error: timezone: unknown time zone 'Amercia/New_York'; did you mean "
            "'America/New_York'? (zones are read from " +
            dir +
            "; TZDIR names another "
            "directory)\n"
            "r.yaml:12:21: error: delete: filter 'tz' needs a time zone: tz:ZONE (e.g. "
            "tz:Europe/Berlin), or a rule-level 'timezone:'\n");
}

TEST_CASE("rules: the hash changes with the timezone, not for rules without one") {
  const char* base = R"(version: 1
rules:
  - name: a
    table: app.events
    delete: "d:${at|date}"
)";
  auto plain = load_rules(base);
  auto berlin = load_rules(std::string(base) + "    timezone: Europe/Berlin\n");
  auto ny = load_rules(std::string(base) + "    timezone: America/New_York\n");
  CHECK(plain->hash() != berlin->hash());
  CHECK(berlin->hash() != ny->hash());
}

TEST_CASE("rules: the README's time zone example renders the keys it shows") {
  // The ```yaml block after "name its zone" in README.md, as a rule file.
  std::ifstream in(std::string(PGBUST_SOURCE_DIR) + "/README.md");
  std::stringstream text;
  text << in.rdbuf();
  std::string readme = text.str();
  std::size_t at = readme.find("name its zone");
  REQUIRE(at != std::string::npos);
  std::size_t start = readme.find("```yaml\n", at);
  REQUIRE(start != std::string::npos);
  start += 8;
  std::size_t end = readme.find("```", start);
  REQUIRE(end != std::string::npos);
  auto rules = load_rules("version: 1\nrules:\n" + readme.substr(start, end - start));
  Fixture f("public", "orders", {"id", "created_at"}, {"id"});
  rules::Engine engine(rules, {});
  auto keys = f.run(engine, Op::Insert, nullptr,
                    f.row({{"id", val("1")}, {"created_at", val("2024-01-01 02:30:00+00")}}));
  // md5("2023-12-31 21:30:00-05")[:8] = 096e2c30 (Python hashlib)
  CHECK(keys ==
        std::vector<std::string>{"delete report:day:2023-12-31", "delete report:week:2023-12-25",
                                 "delete report:berlin:2024-01-01", "delete seen:096e2c30"});
}

TEST_CASE("rules: a timezone no filter uses is a warning") {
  auto r = rules::RuleSet::parse(R"(version: 1
rules:
  - name: a
    table: app.events
    timezone: Europe/Berlin
    delete: ["d:${at|date:UTC}", "${(${id}:${at|md5:4})|md5:8}"]
  - name: b
    table: app.events
    timezone: Europe/Berlin
    delete: "g:${(${id}:${at|week_start})|md5:8}"
)",
                                 "r.yaml");
  REQUIRE(r.rules);
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0].str() ==
        "r.yaml:5:5: warning: timezone: no date, month, week_start or tz filter of this rule uses "
        "it (a filter with its own :ZONE does not)");
}
