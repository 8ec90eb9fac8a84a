// Describing a conninfo from what libpq parsed, so no password form libpq accepts (escaped,
// quoted, percent-encoded, repeated, inside an expanded dbname) can reach a message.
#include "pgbust/pg/conninfo.hpp"

#include <array>
#include <memory>
#include <optional>
#include <regex>
#include <utility>
#include <vector>

#include "pgbust/core/quote.hpp"
#include "pgbust/pg/libpq.hpp"

namespace pgbust::pg {

namespace {

struct OptionsDeleter {
  void operator()(PQconninfoOption* o) const noexcept { PQconninfoFree(o); }
};
using Options = std::unique_ptr<PQconninfoOption, OptionsDeleter>;

constexpr std::string_view kMask = "********";

// Printed as themselves: where the connection goes, and options no secret hides in.
constexpr std::array<std::string_view, 4> kWhere = {"host", "port", "dbname", "user"};
constexpr std::array<std::string_view, 16> kHarmless = {
    "hostaddr",           "sslmode",
    "gssencmode",         "channel_binding",
    "connect_timeout",    "target_session_attrs",
    "load_balance_hosts", "replication",
    "application_name",   "fallback_application_name",
    "client_encoding",    "keepalives",
    "keepalives_idle",    "keepalives_interval",
    "keepalives_count",   "tcp_user_timeout"};

bool contains(auto const& list, std::string_view word) {
  for (auto w : list)
    if (w == word) return true;
  return false;
}

// libpq's test for "this dbname is a connection string" (recognized_connection_string).
bool looks_like_conninfo(std::string_view s) {
  return s.starts_with("postgresql://") || s.starts_with("postgres://") ||
         s.find('=') != std::string_view::npos;
}

// A value as it appears in a description: bare when plain, quoted otherwise.
std::string value_text(std::string_view v) {
  if (v.empty()) return "''";
  for (char c : v) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 std::string_view("._-:,/@+[]%").find(c) != std::string_view::npos;
    if (!plain) return quote_for_log(v);
  }
  return std::string(v);
}

// libpq's conninfo parse errors (PostgreSQL 15, English), reworded without the fragment of the
// conninfo each one quotes; a position libpq gives is kept. nullopt: not one of them.
std::optional<std::string> redact_parse_error(std::string message) {
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  static const std::pair<const char*, const char*> kForms[] = {
      {R"(missing "=" after "[\s\S]*" in connection info string)",
       R"(missing "=" after "..." in connection info string)"},
      {R"(unterminated quoted string in connection info string)",
       R"(unterminated quoted string in connection info string)"},
      {R"(invalid connection option "[\s\S]*")", R"(invalid connection option "...")"},
      {R"(end of string reached when looking for matching "\]" in IPv6 host address in URI: "[\s\S]*")",
       R"(end of string reached when looking for matching "]" in IPv6 host address in URI)"},
      {R"(IPv6 host address may not be empty in URI: "[\s\S]*")",
       R"(IPv6 host address may not be empty in URI)"},
      {R"(unexpected character "[\s\S]" at position ([0-9]+) in URI \(expected ":" or "/"\): "[\s\S]*")",
       R"(unexpected character at position $1 in URI (expected ":" or "/"))"},
      {R"(extra key/value separator "=" in URI query parameter: "[\s\S]*")",
       R"(extra key/value separator "=" in a URI query parameter)"},
      {R"(missing key/value separator "=" in URI query parameter: "[\s\S]*")",
       R"(missing key/value separator "=" in a URI query parameter)"},
      {R"(invalid URI query parameter: "[\s\S]*")", R"(invalid URI query parameter)"},
      {R"(invalid percent-encoded token: "[\s\S]*")", R"(invalid percent-encoded token)"},
      {R"(forbidden value %00 in percent-encoded value: "[\s\S]*")",
       R"(forbidden value %00 in a percent-encoded value)"},
      {R"(invalid URI propagated to internal parser routine: "[\s\S]*")", R"(invalid URI)"},
  };
  static const auto forms = [] {
    std::vector<std::pair<std::regex, std::string>> out;
    for (auto [re, shown] : kForms) out.emplace_back(std::regex(re), shown);
    return out;
  }();
  for (const auto& [re, shown] : forms) {
    std::smatch m;
    if (std::regex_match(message, m, re)) return m.format(shown);
  }
  return std::nullopt;
}

constexpr std::string_view kNotUnderstood = "conninfo not understood by libpq: ";

std::string parse_failure(const char* err) {
  return std::string(kNotUnderstood) +
         redact_parse_error(err ? err : "")
             .value_or("(libpq's message withheld: it may quote the conninfo)");
}

std::string describe(std::string_view conninfo, int depth);

std::string describe_db(std::string_view dbname, int depth) {
  if (!looks_like_conninfo(dbname)) return value_text(dbname);
  if (depth > 0) return std::string(kMask);
  return "(" + describe(dbname, depth + 1) + ")";
}

std::string describe(std::string_view conninfo, int depth) {
  // A bare word is a database name to the sources (they pass the conninfo as an expanded
  // dbname); as a conninfo libpq cannot parse it.
  bool blank = conninfo.find_first_not_of(" \t\n\r\f\v") == std::string_view::npos;
  if (depth == 0 && !blank && !looks_like_conninfo(conninfo))
    return "dbname=" + value_text(conninfo);
  char* err = nullptr;
  Options opts(PQconninfoParse(std::string(conninfo).c_str(), &err));
  Buffer err_owner(err);
  if (!opts) return parse_failure(err);
  std::string out;
  auto add = [&out](std::string_view key, std::string_view value) {
    if (!out.empty()) out += ' ';
    out.append(key).append("=").append(value);
  };
  for (std::string_view key : kWhere)
    for (const PQconninfoOption* o = opts.get(); o->keyword; ++o)
      if (o->val && key == o->keyword)
        add(key, key == "dbname" ? describe_db(o->val, depth) : value_text(o->val));
  for (const PQconninfoOption* o = opts.get(); o->keyword; ++o)
    if (o->val && !contains(kWhere, o->keyword))
      add(o->keyword, contains(kHarmless, o->keyword) ? value_text(o->val) : kMask);
  return out.empty() ? "(libpq defaults)" : out;
}

}  // namespace

std::string describe_conninfo(std::string_view conninfo) {
  return describe(conninfo, 0);
}

std::optional<std::string> conninfo_problem(std::string_view conninfo) {
  if (!looks_like_conninfo(conninfo)) return std::nullopt;
  char* err = nullptr;
  Options opts(PQconninfoParse(std::string(conninfo).c_str(), &err));
  Buffer err_owner(err);
  if (opts) return std::nullopt;
  return parse_failure(err);
}

std::string describe_dbname(std::string_view dbname) {
  return describe_db(dbname, 0);
}

std::string connect_error(const PGconn* conn, std::string_view conninfo) {
  // PQconnectdb reports a conninfo it cannot parse with the parse error (quoting the text); a
  // bare word given as an expanded dbname is no parse error, so libpq's own text stands.
  std::string text = error_text(conn);
  if (auto redacted = redact_parse_error(text)) return std::string(kNotUnderstood) + *redacted;
  char* err = nullptr;
  Options opts(PQconninfoParse(std::string(conninfo).c_str(), &err));
  Buffer err_owner(err);
  if (!opts && looks_like_conninfo(conninfo)) return parse_failure(err);
  return text;
}

}  // namespace pgbust::pg
