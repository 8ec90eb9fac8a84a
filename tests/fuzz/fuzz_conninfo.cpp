// Fuzz target: describing a conninfo. Property: no password libpq would use (the conninfo's
// own, or the one of a dbname libpq would expand) survives, and a conninfo libpq cannot parse
// is described only by a fixed text (never an echo of the input).
#include <libpq-fe.h>

#include <cctype>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/pg/conninfo.hpp"

namespace {

struct Free {
  void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};

// Passwords libpq takes from `conninfo`; `visible` collects every other keyword and value.
void passwords(const std::string& conninfo, std::vector<std::string>& out, std::string& visible,
               int depth) {
  char* err = nullptr;
  std::unique_ptr<PQconninfoOption, Free> opts(PQconninfoParse(conninfo.c_str(), &err));
  PQfreemem(err);
  if (!opts) return;
  for (auto* o = opts.get(); o->keyword; ++o) {
    if (!o->val) continue;
    std::string key = o->keyword, val = o->val;
    if (key == "password") {
      out.push_back(val);
      continue;
    }
    visible += key + "=" + val + " ";
    if (key == "dbname" && depth == 0) passwords(val, out, visible, 1);
  }
}

// The values of a description (`key=value ...`, a value bare, double-quoted with escapes, or
// a parenthesised description), unescaped: where a leaked password would be. Checking the
// values rather than the whole text keeps the description's own words ("password=", a
// quote) from matching a short password.
void values(std::string_view text, std::size_t& i, std::vector<std::string>& out) {
  while (i < text.size() && text[i] != ')') {
    std::size_t eq = text.find('=', i);
    if (eq == std::string_view::npos) return;
    i = eq + 1;
    if (i < text.size() && text[i] == '(') {  // an expanded dbname, or a fixed message
      std::size_t depth = 0;
      std::size_t start = ++i;
      for (; i < text.size() && !(text[i] == ')' && depth == 0); ++i) {
        if (text[i] == '"')
          for (++i; i < text.size() && text[i] != '"'; ++i) i += text[i] == '\\';
        else if (text[i] == '(')
          ++depth;
        else if (text[i] == ')')
          --depth;
      }
      std::size_t j = 0;
      values(text.substr(start, i - start), j, out);
      ++i;
    } else if (i < text.size() && text[i] == '"') {
      std::string v;
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] != '\\' || i + 1 >= text.size()) {
          v += text[i];
          continue;
        }
        char e = text[++i];
        if (e == 'x' && i + 2 < text.size()) {
          v += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
          i += 2;
        } else {
          v += e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
        }
      }
      out.push_back(v);
      ++i;
    } else {
      std::size_t end = text.find(' ', i);
      if (end == std::string_view::npos) end = text.size();
      out.emplace_back(text.substr(i, end - i));
      i = end;
    }
    while (i < text.size() && text[i] == ' ') ++i;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string conninfo(reinterpret_cast<const char*>(data), size);
  if (conninfo.find('\0') != std::string::npos) return 0;  // libpq sees a C string
  std::string described = pgbust::pg::describe_conninfo(conninfo);
  static const std::string kFixed =
      "conninfo not understood by libpq: (libpq defaults) ******** "
      "missing \"=\" after \"...\" in connection info string unterminated quoted string "
      "invalid connection option end of string reached when looking for matching \"]\" in "
      "IPv6 host address in URI may not be empty unexpected character at position ";
  std::vector<std::string> secrets;
  std::string visible = kFixed;
  passwords(conninfo, secrets, visible, 0);
  std::vector<std::string> shown;
  std::size_t at = 0;
  values(described, at, shown);
  for (const auto& s : secrets)
    for (const auto& v : shown)
      if (s.size() >= 4 && visible.find(s) == std::string::npos && v.find(s) != std::string::npos)
        __builtin_trap();
  // A bare word is described as the database name the sources would use: nothing else.
  if (conninfo.find('=') == std::string::npos && conninfo.rfind("postgres://", 0) != 0 &&
      conninfo.rfind("postgresql://", 0) != 0 &&
      conninfo.find_first_not_of(" \t\n\r\f\v") != std::string::npos) {
    if (described.rfind("dbname=", 0) != 0) __builtin_trap();
    return 0;
  }
  static const std::string kNot = "conninfo not understood by libpq: ";
  if (described.rfind(kNot, 0) == 0) {
    // Only libpq's reworded message: letters, spaces, quotes and a position.
    for (char c : described.substr(kNot.size()))
      if (!(std::isalnum(static_cast<unsigned char>(c)) ||
            std::string_view(" \"./:=%()]-'").find(c) != std::string_view::npos))
        __builtin_trap();
    // Digits (a position, a percent-encoded byte) as '#', in the message and in the forms
    // alike ("IPv6" is "IPv#" in both).
    auto digits = [](std::string_view text) {
      std::string out;
      for (char c : text) out += std::isdigit(static_cast<unsigned char>(c)) ? '#' : c;
      return out;
    };
    std::string words = digits(described.substr(kNot.size()));
    static const char* const kForms[] = {
        "missing \"=\" after \"...\" in connection info string",
        "unterminated quoted string in connection info string",
        "invalid connection option \"...\"",
        "end of string reached when looking for matching \"]\" in IPv6 host address in URI",
        "IPv6 host address may not be empty in URI",
        "extra key/value separator \"=\" in a URI query parameter",
        "missing key/value separator \"=\" in a URI query parameter",
        "invalid URI query parameter",
        "invalid percent-encoded token",
        "forbidden value %## in a percent-encoded value",
        "invalid URI",
        "(libpq's message withheld: it may quote the conninfo)",
    };
    bool known = words.rfind("unexpected character at position ", 0) == 0;
    for (const char* f : kForms) known = known || words == digits(f);
    if (!known) __builtin_trap();
  }
  return 0;
}
