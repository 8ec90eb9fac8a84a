// The project's one exception root, and the helpers that keep secrets out of messages.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace pgbust {

// Setup failures and broken connections. Hot paths return values instead of throwing.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A connection-level failure: the caller reconnects with backoff.
class ConnectionError : public Error {
 public:
  using Error::Error;
};

// A libpq conninfo with any password=... value replaced by "********" (keyword/value and URI
// forms).
std::string mask_conninfo(std::string_view conninfo);
// A redis:// URL with the password part replaced by "********".
std::string mask_url(std::string_view url);

}  // namespace pgbust
