// What a Redis error reply means for the batch it failed: worth retrying on the same server
// soon (the server is busy, loading, failing over), or failing until someone acts (memory
// full, permissions, a command the server does not offer).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgbust::redis {

enum class ErrorClass : std::uint8_t {
  // LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN, READONLY (a replica after failover):
  // the server as a whole cannot serve now; reconnect with backoff and apply again.
  Transient,
  // OOM, NOPERM, NOAUTH, WRONGPASS, WRONGTYPE, MISCONF, unknown command, and any error not
  // known to be transient: the command keeps failing until an operator acts.
  Persistent,
};

// The class of an error reply's text ("OOM command not allowed when used memory > ...").
ErrorClass classify_error(std::string_view reply);
std::string_view to_string(ErrorClass c);  // "transient", "persistent"
// What an operator can do about it, for the log ("" when nothing specific is known).
std::string_view error_hint(std::string_view reply);

// NOAUTH, WRONGPASS, NOPERM: the server answers, but not to this user; an operator must act.
bool is_access_error(std::string_view reply);
// For an access error: "an authentication problem: ..." or "a permission problem: Redis user
// 'app' may not run UNLINK; grant it: ACL SETUSER app +unlink" (`acl_command` as ACL names it:
// "unlink", "client|setname"); never the password. "" for other errors.
std::string access_advice(std::string_view reply, std::string_view user,
                          std::string_view acl_command);

}  // namespace pgbust::redis
