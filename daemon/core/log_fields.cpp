// The thread's log fields (see log_fields.hpp).
#include "pgbust/core/log_fields.hpp"

namespace pgbust {

namespace {
thread_local LogFields current;
}

const LogFields& log_fields() {
  return current;
}

LogScope::LogScope(const LogFields& fields) : saved_(current) {
  if (!fields.source.empty()) current.source = fields.source;
  if (!fields.rule.empty()) current.rule = fields.rule;
  if (!fields.target.empty()) current.target = fields.target;
}

LogScope::~LogScope() {
  current = saved_;
}

}  // namespace pgbust
