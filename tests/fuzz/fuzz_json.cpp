// Fuzz target: the JSON parser; whatever parses must survive a quote/parse round of its text.
#include <cstdint>
#include <string_view>

#include "pgbust/core/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto v = pgbust::json::parse(text);
    if (v.is_string()) {
      auto again = pgbust::json::parse(pgbust::json::quote(v.text()));
      if (again.text() != v.text()) __builtin_trap();
    }
  } catch (const pgbust::json::ParseError&) {
  }
  return 0;
}
