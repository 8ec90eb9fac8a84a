// What a log line is about, for structured logging: the source, rule or Redis target a line
// concerns. Code that knows it wraps its log call in a LogScope; the journald sink
// (ops/logging.cpp) sends the fields as PGBUST_SOURCE=, PGBUST_RULE=, PGBUST_TARGET=. Logging
// is synchronous, so a thread-local scope reaches the sink of the same call.
#pragma once

#include <string_view>

namespace pgbust {

struct LogFields {
  std::string_view source;  // "logical", "notify", "poll" (a source's name)
  std::string_view rule;    // a rule's name
  std::string_view target;  // "redis"

  static LogFields of_source(std::string_view s) { return {s, {}, {}}; }
  static LogFields of_rule(std::string_view r) { return {{}, r, {}}; }
  static LogFields of_target(std::string_view t) { return {{}, {}, t}; }
};

// The fields of the innermost LogScope on this thread (empty outside any).
const LogFields& log_fields();

// Sets the fields for the log calls in its lifetime; the non-empty ones override the
// enclosing scope's. The viewed strings must outlive the scope.
class LogScope {
 public:
  explicit LogScope(const LogFields& fields);
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  LogFields saved_;
};

}  // namespace pgbust
