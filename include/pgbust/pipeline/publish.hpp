// The PUBLISH message a rule with `publish:` sends for one committed transaction (DESIGN.md,
// "Publish"): which source and position, which tables, and what was invalidated.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace pgbust {

// What one transaction invalidated on one channel; each list in the order rules named it.
struct PublishContent {
  std::set<std::string> tables;  // schema.name
  std::vector<std::string> keys, patterns, revisions;
  bool truncated = false;  // more items than publish_max_items: the lists are a prefix
  bool gap = false;        // widened for changes pgbust could not see (a slot or NOTIFY gap)
  bool flush = false;      // sent by `pgbust flush` (gap is set too): a one-shot widening
};

// {"source":…,"position":…,"tables":[…],"keys":[…],"patterns":[…],"revisions":[…],
//  "truncated":false}, plus "gap":true when the transaction widened for a gap (subscribers
// holding an L1 copy should drop everything the rule covers), and "flush":true when
// `pgbust flush` sent it: compact JSON, strings quoted by json::quote.
std::string publish_message(std::string_view source, std::string_view position,
                            const PublishContent& content);

}  // namespace pgbust
