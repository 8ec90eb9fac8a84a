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

bool is_access_error(std::string_view reply) {
  const std::string_view code = code_of(reply);
  return code == "NOAUTH" || code == "WRONGPASS" || code == "NOPERM";
}

std::string access_advice(std::string_view reply, std::string_view user,
                          std::string_view acl_command) {
  const std::string_view code = code_of(reply);
  const std::string name(user.empty() ? "default" : user);
  if (code == "NOAUTH")
    return "an authentication problem: the server requires a password (give it in the URL or "
           "redis.password_file)";
  if (code == "WRONGPASS")
    return "an authentication problem: check the password of Redis user '" + name + "'";
  if (code != "NOPERM") return "";
  std::string grant;
  if (reply.find("key") != std::string_view::npos) {
    grant = "~<the key pattern>";
  } else if (reply.find("channel") != std::string_view::npos) {
    grant = "&<the channel>";
  } else {
    grant = "+" + std::string(acl_command);
  }
  std::string upper(acl_command);
  for (char& c : upper) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : (c == '|' ? ' ' : c));
  return "a permission problem: Redis user '" + name + "' may not run " + upper +
         (grant[0] == '+' ? "" : " on it") + "; grant it: ACL SETUSER " + name + " " + grant;
}

}  // namespace pgbust::redis
