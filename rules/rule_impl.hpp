// The compiled form of one rule, shared by the loader (which builds it) and the engine
// (which runs it). Internal to the rule engine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "condition.hpp"
#include "pgbust/rules/rules.hpp"
#include "template.hpp"

namespace pgbust::rules::detail {

constexpr std::uint8_t op_bit(Op op) {
  return static_cast<std::uint8_t>(1u << static_cast<int>(op));
}
constexpr std::uint8_t kAllOps = 0x0F;

// A set of key templates per action.
struct Actions {
  std::vector<Template> deletes;   // exact keys (UNLINK)
  std::vector<Template> patterns;  // SCAN MATCH patterns
  std::vector<Template> bumps;     // revision counters (INCR)
  bool empty() const { return deletes.empty() && patterns.empty() && bumps.empty(); }
  bool uses_columns() const;
};

struct RuleImpl {
  std::uint8_t ops = kAllOps;  // op_bit() set
  Slots slots;                 // every column the rule reads
  std::vector<int> changed;    // slots; updates fire only when one differs
  std::optional<Condition> when;
  Actions actions;
  std::optional<Actions> fallback;  // runs instead of pattern widening
  std::optional<std::string> null_as;
  std::string timezone;  // `timezone:` as written, or empty
};

}  // namespace pgbust::rules::detail
