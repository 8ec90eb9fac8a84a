// Fuzz target: NOTIFY payloads as the notify source reads them, and their log prefixes.
#include <cstdint>
#include <string_view>

#include "pgbust/sources/notify.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = pgbust::notify::parse_payload(text);
  std::string prefix = pgbust::notify::payload_prefix(text, 64);
  if (prefix.find('\n') != std::string::npos) __builtin_trap();  // a log line stays one line
  (void)r;
  return 0;
}
