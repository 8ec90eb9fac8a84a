// Fuzz target: the content of pg_logical_emit_message(true, 'pgbust', ...) as the pipeline
// reads it. Accepted or rejected with a reason, never anything else.
#include <cstdint>
#include <string_view>

#include "pgbust/core/emitted.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  pgbust::EmittedRejection why;
  auto r = pgbust::parse_emitted(text, why);
  if (r) {
    if (r->deletes.empty() && r->patterns.empty() && r->bumps.empty() && r->publish.empty())
      __builtin_trap();  // accepted means at least one action
    for (const auto* list : {&r->deletes, &r->patterns, &r->bumps, &r->publish})
      for (const auto& k : *list)
        if (k.empty()) __builtin_trap();
  } else if (why.reason.empty()) {
    __builtin_trap();  // every rejection is counted under a reason
  }
  return 0;
}
