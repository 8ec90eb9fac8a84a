// Classifying Redis error replies by their error code (the first word of the reply).
#include "pgbust/redis/errors.hpp"

namespace pgbust::redis {

namespace {

std::string_view code_of(std::string_view reply) {
  return reply.substr(0, reply.find(' '));
}

}  // namespace

ErrorClass classify_error(std::string_view reply) {
  const std::string_view code = code_of(reply);
  for (std::string_view t :
       {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY"})
    if (code == t) return ErrorClass::Transient;
  return ErrorClass::Persistent;
}

std::string_view to_string(ErrorClass c) {
  return c == ErrorClass::Transient ? "transient" : "persistent";
}

std::string_view error_hint(std::string_view reply) {
  const std::string_view code = code_of(reply);
  if (code == "OOM")
    return "Redis is at maxmemory with a policy that does not evict; deletes still go through "
           "and free memory";
  if (code == "NOPERM") return "the Redis user lacks a permission pgbust needs (see the ACL)";
  if (code == "NOAUTH" || code == "WRONGPASS") return "check the Redis user and password";
  if (code == "MISCONF") return "Redis refuses writes because it cannot save its snapshot";
  if (reply.starts_with("ERR unknown command"))
    return "the server does not offer this command (renamed or an old version)";
  return "";
}

}  // namespace pgbust::redis
