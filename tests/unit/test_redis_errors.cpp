// Redis error replies sorted into transient (retry the server soon) and persistent (the
// batch keeps failing until an operator acts).
#include "pgbust/redis/errors.hpp"

#include <doctest/doctest.h>

#include <string>

using pgbust::redis::classify_error;
using pgbust::redis::error_hint;
using pgbust::redis::ErrorClass;

TEST_CASE("Redis error replies by class") {
  struct Case {
    std::string reply;
    ErrorClass cls;
    bool hint;
  };
  const Case cases[] = {
      {"LOADING Redis is loading the dataset in memory", ErrorClass::Transient, false},
      {"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
       ErrorClass::Transient, false},
      {"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
       ErrorClass::Transient, false},
      {"TRYAGAIN Multiple keys request during rehashing of slot", ErrorClass::Transient, false},
      {"CLUSTERDOWN The cluster is down", ErrorClass::Transient, false},
      {"READONLY You can't write against a read only replica.", ErrorClass::Transient, false},
      {"OOM command not allowed when used memory > 'maxmemory'.", ErrorClass::Persistent, true},
      {"NOPERM this user has no permissions to run the 'unlink' command", ErrorClass::Persistent,
       true},
      {"NOAUTH Authentication required.", ErrorClass::Persistent, true},
      {"WRONGPASS invalid username-password pair or user is disabled.", ErrorClass::Persistent,
       true},
      {"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist",
       ErrorClass::Persistent, true},
      {"ERR unknown command 'UNLINK', with args beginning with: 'k' ", ErrorClass::Persistent,
       true},
      {"WRONGTYPE Operation against a key holding the wrong kind of value", ErrorClass::Persistent,
       false},
      {"ERR something nobody has seen", ErrorClass::Persistent, false},
      {"LOADINGX is not LOADING", ErrorClass::Persistent, false},  // the code, not a prefix
      {"", ErrorClass::Persistent, false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.reply);
    CHECK(classify_error(c.reply) == c.cls);
    CHECK(error_hint(c.reply).empty() == !c.hint);
  }
}
