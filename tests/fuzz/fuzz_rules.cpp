// Fuzz target: the rules loader and the config loader (first byte chooses), then the engine's
// binding of every loaded rule to a table layout.
#include <cstdint>
#include <string>

#include "pgbust/core/config.hpp"
#include "pgbust/core/error.hpp"
#include "pgbust/rules/rules.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    try {
      pgbust::config::parse(text, "fuzz.yaml");
    } catch (const pgbust::Error&) {
    }
    return 0;
  }
  auto r = pgbust::rules::RuleSet::parse(text, "fuzz.yaml");
  if (!r.rules) return 0;
  for (const auto& t : r.rules->tables()) {
    auto dot = t.find('.');
    (void)r.rules->old_values_needed(t.substr(0, dot), t.substr(dot + 1));
  }
  pgbust::rules::Engine engine(r.rules, {});
  return 0;
}
