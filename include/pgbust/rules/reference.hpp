// The rule language's reference documentation, written once: the keys of a rules file, the
// template filters and the prose on placeholders and conditions. `pgbust help --format
// man5|markdown` renders it into pgbust.yaml(5) and the README; unit.rules checks the keys
// and filters against what the loader and the template parser accept.
#pragma once

#include <span>
#include <string_view>

#include "pgbust/core/reference.hpp"

namespace pgbust::rules {

// A filter of ${col|name:arg}.
struct FilterDoc {
  std::string_view name;
  std::string_view usage;  // "md5[:N]"
  std::string_view doc;
};

// A block of prose: a paragraph, or (code) lines shown as written. `backticks` mark code.
struct Prose {
  bool code;
  std::string_view text;
};

std::span<const KeyDoc> keys();  // "version", "rules", "rules[].name", "rules[].fallback.bump"
std::span<const FilterDoc> filters();
std::span<const Prose> templates_prose();   // placeholders: ${col}, ${new.col}, groups, $$
std::span<const Prose> conditions_prose();  // when: the condition language

}  // namespace pgbust::rules
