// Non-blocking libpq for sources that live in the event loop (NOTIFY, polling): a connection
// that connects and runs one query at a time without ever blocking.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/pg/host_lookups.hpp"
#include "pgbust/pg/libpq.hpp"

namespace pgbust::pg {

// One non-blocking connection. Phases: closed -> connecting (host names resolved off the loop,
// see host_lookups.hpp, then PQconnectPoll) -> connected, where at most one query is in
// flight. Every failure throws: ConnectionError for a broken
// connection, Error for a query the server refused; the caller closes and reconnects.
class AsyncConn {
 public:
  AsyncConn() = default;
  AsyncConn(const AsyncConn&) = delete;
  AsyncConn& operator=(const AsyncConn&) = delete;

  // Starts connecting. `application_name` applies unless the conninfo names one; notices
  // (server warnings) go to `on_notice` instead of libpq's default (stderr). Throws
  // ConnectionError when libpq refuses at once (bad conninfo); the message masks passwords.
  void start(const std::string& conninfo, const std::string& application_name,
             std::function<void(std::string_view)> on_notice);
  void close() noexcept;

  bool open() const { return conn_ != nullptr || lookups_ != nullptr; }
  bool connected() const { return conn_ && !connecting_; }
  PGconn* get() const { return conn_.get(); }  // null while host names are resolved
  int fd() const;
  // What to wait for now: while connecting, what PQconnectPoll asked for; when connected,
  // POLLIN if `reading`, plus POLLOUT while query text is still being sent.
  short events(bool reading) const;
  // While connecting, call when the socket is ready: true once connected.
  bool continue_connect();

  // Sends one query; with parameters it is a single statement (extended protocol), without
  // it may hold several (simple protocol). Parameters are text, nullopt is NULL.
  void send(const std::string& sql, const std::vector<std::optional<std::string>>& params = {});
  bool busy() const { return busy_; }
  // Reads what arrived (on POLLIN) and writes what is pending (on POLLOUT, or when output is
  // pending). Throws ConnectionError when the connection is gone.
  void pump(short revents);
  // True when the query in flight finished: `out` holds its last result. Throws Error (with
  // the server's text and `what`) when the query failed.
  bool take_result(Result& out, std::string_view what);

  // "host:port dbname user" of the server, for messages.
  std::string server() const;
  // "host:port" of the server, for log lines (the conninfo's, while host names are resolved).
  std::string host_port() const;

 private:
  void start_libpq();

  std::unique_ptr<HostLookups> lookups_;  // while resolving host names
  std::string conninfo_, application_name_;
  Conn conn_;
  bool connecting_ = false;
  PostgresPollingStatusType poll_ = PGRES_POLLING_WRITING;
  bool busy_ = false;
  bool flushing_ = false;
  Result pending_;             // the latest result of the query in flight
  std::string pending_error_;  // its first error, thrown once the query is complete
  std::function<void(std::string_view)> on_notice_;
};

// Quote an identifier or literal without a connection (standard_conforming_strings on; a
// literal with a backslash uses the E'' form, so it reads the same either way).
std::string quote_ident(std::string_view ident);
std::string quote_literal(std::string_view text);

}  // namespace pgbust::pg
