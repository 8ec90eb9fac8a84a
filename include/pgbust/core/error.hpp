// The project's one exception root.
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

// Secrets stay out of messages: pg::describe_conninfo (pgbust/pg/conninfo.hpp) describes a
// conninfo by what libpq parsed; redis::mask_url (pgbust/redis/redis.hpp) masks a Redis URL.

}  // namespace pgbust
