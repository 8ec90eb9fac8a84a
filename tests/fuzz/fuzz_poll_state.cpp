// Fuzz target: poll state files; a state that parses must serialize and parse back the same.
#include <cstdint>
#include <string_view>

#include "pgbust/core/error.hpp"
#include "pgbust/sources/poll_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto w = pgbust::poll::parse(text);
    if (!(pgbust::poll::parse(pgbust::poll::serialize(w)) == w)) __builtin_trap();
  } catch (const pgbust::Error&) {
  }
  return 0;
}
