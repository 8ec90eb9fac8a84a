// Redis' glob matching (stringmatchlen semantics), iterative: in core so both the rules
// (explain, tests) and the Redis target (client-side matching of a keyspace pass) use it.
#include "pgbust/core/glob.hpp"

#include <optional>
#include <utility>

namespace pgbust {

namespace {

// The pattern token at `pi` (anything but '*') against one character: the index just past the
// token when `c` matches it. A token's length never depends on `c`, which is what lets
// glob_match keep a single backtracking point.
std::optional<std::size_t> match_token(std::string_view p, std::size_t pi, char c) {
  switch (p[pi]) {
    case '?':
      return pi + 1;
    case '[': {
      ++pi;
      bool negate = pi < p.size() && p[pi] == '^';
      if (negate) ++pi;
      bool match = false;
      for (;;) {
        if (pi >= p.size()) {  // unterminated class: Redis stops at the pattern's end
          pi = p.size() - 1;
          break;
        }
        if (p[pi] == '\\' && p.size() - pi >= 2) {
          ++pi;
          if (p[pi] == c) match = true;
        } else if (p[pi] == ']') {
          break;
        } else if (p.size() - pi >= 3 && p[pi + 1] == '-') {
          auto lo = static_cast<unsigned char>(p[pi]), hi = static_cast<unsigned char>(p[pi + 2]);
          if (lo > hi) std::swap(lo, hi);
          auto u = static_cast<unsigned char>(c);
          if (u >= lo && u <= hi) match = true;
          pi += 2;
        } else if (p[pi] == c) {
          match = true;
        }
        ++pi;
      }
      if (negate) match = !match;
      if (!match) return std::nullopt;
      return pi + 1;
    }
    case '\\':
      if (p.size() - pi >= 2) ++pi;
      [[fallthrough]];
    default:
      if (p[pi] != c) return std::nullopt;
      return pi + 1;
  }
}

}  // namespace

// Iterative, with one backtracking point: every token but '*' matches exactly one character,
// so on a mismatch only the latest '*' needs to absorb one more character (earlier stars can
// never do better). O(|pattern| x |text|) at worst, where the recursive form was exponential.
bool glob_match(std::string_view p, std::string_view s) {
  constexpr auto none = std::string_view::npos;
  std::size_t pi = 0, si = 0, star_p = none, star_s = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      while (pi < p.size() && p[pi] == '*') ++pi;
      if (pi == p.size()) return true;  // a trailing star takes the rest
      star_p = pi;
      star_s = si;
      continue;
    }
    if (pi < p.size()) {
      if (auto next = match_token(p, pi, s[si])) {
        pi = *next;
        ++si;
        continue;
      }
    }
    if (star_p == none) return false;
    pi = star_p;
    si = ++star_s;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;  // trailing stars match nothing ("*" matches "")
  return pi == p.size();
}

std::string glob_literal_prefix(std::string_view p) {
  std::string out;
  for (std::size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '*' || c == '?' || c == '[') break;
    if (c == '\\' && i + 1 < p.size()) c = p[++i];  // a trailing one matches itself
    out.push_back(c);
  }
  return out;
}

}  // namespace pgbust
