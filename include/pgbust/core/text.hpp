// Small text helpers shared by messages and generated SQL.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgbust {

// "a, b, c" (or with another separator).
inline std::string join(const std::vector<std::string>& items, std::string_view sep = ", ") {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

// Multi-line messages (libpq's "...\n\tThis probably means...", a server's DETAIL: and
// CONTEXT: lines) as one log line.
inline std::string one_line(std::string_view text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty() && out.back() != ' ') out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace pgbust
