// Redis' glob matching, shared by the rules (explain, tests) and the Redis target (a keyspace
// pass matches the keys it scans against every pending pattern client-side).
#pragma once

#include <string>
#include <string_view>

namespace pgbust {

// Redis' glob matching (stringmatchlen semantics: * ? [abc] [^a] [a-z] \x), without
// exponential backtracking: O(|pattern| x |text|) at worst.
bool glob_match(std::string_view pattern, std::string_view text);

// The literal text every key matching `pattern` starts with (escapes resolved): "rev:t:" for
// "rev:t:*", "a*b" for "a\\*b?" . Empty when the pattern starts with a wildcard.
std::string glob_literal_prefix(std::string_view pattern);

}  // namespace pgbust
