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

}  // namespace pgbust
