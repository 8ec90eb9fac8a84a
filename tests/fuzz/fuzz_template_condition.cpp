// Fuzz target: key templates and `when` conditions (first byte chooses).
#include <cstdint>
#include <string_view>

#include "../../rules/condition.hpp"
#include "../../rules/template.hpp"

using namespace pgbust::rules::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  Slots slots;
  if (data[0] & 1) {
    Template t;
    (void)parse_template(text, slots, t);
  } else {
    Condition c;
    (void)parse_condition(text, slots, c);
  }
  return 0;
}
