// The reference documentation of pgbust.yaml: one entry per key (path, type, default, one
// sentence), from which `pgbust help --format man5|markdown` renders pgbust.yaml(5) and the
// README's reference. A unit test walks the parser (config::accepted_keys) and fails when a
// key is accepted but not documented here, or documented here but not accepted.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgbust {

struct KeyDoc {
  std::string_view path;      // "redis.tls.verify"; "sources.poll.tables[].table" in a list
  std::string_view type;      // "string", "duration", "one of: full, ca, none", "mapping", ...
  std::string_view fallback;  // the default as written in the file; "" when there is none
  std::string_view doc;       // one sentence
  std::string_view example;   // a valid YAML value (for sections: ""), used by the tests
};

namespace config {

std::span<const KeyDoc> keys();

// Every key path the parser accepts in the mappings it walks while parsing `text` (sections
// it does not reach are not listed): "redis", "redis.tls", "sources.poll.tables[].table".
// Problems in `text` are ignored.
std::vector<std::string> accepted_keys(const std::string& text);

}  // namespace config
}  // namespace pgbust
