// Invalidations the application emits itself (README, "Invalidations from the application"):
// the content of a transactional pg_logical_emit_message(true, 'pgbust', '{...}'), parsed.
// Pure: no I/O, no key prefix (the pipeline applies it).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgbust {

// The logical decoding message prefix pgbust reads; messages with other prefixes belong to
// other consumers and are skipped silently.
inline constexpr std::string_view kEmittedPrefix = "pgbust";

// {"delete": ["k1", ...], "delete_pattern": ["p:*", ...], "bump": ["rev:x", ...],
//  "publish": "channel" | ["channel", ...]}: every member optional, at least one action.
// Keys are exact Redis keys; delete_pattern members are SCAN MATCH patterns as written (the
// application means their wildcards and escapes any literal `*?[]\` itself).
struct EmittedInvalidation {
  std::vector<std::string> deletes;
  std::vector<std::string> patterns;
  std::vector<std::string> bumps;
  std::vector<std::string> publish;  // channels
};

// Why a message was rejected, for metrics (`reason` label) and logs.
struct EmittedRejection {
  std::string reason;   // "json", "shape", "empty_key", "too_large", "non_transactional"
  std::string message;  // for people: what was expected, and where
};

inline constexpr std::size_t kEmittedMaxBytes = 1 << 20;  // a larger message is rejected
inline constexpr std::size_t kEmittedMaxItems = 10000;    // keys + patterns + bumps + channels

// Parses one message's content; on failure returns nullopt and fills `why`.
std::optional<EmittedInvalidation> parse_emitted(std::string_view content, EmittedRejection& why);

}  // namespace pgbust
