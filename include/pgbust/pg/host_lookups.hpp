// libpq resolves host= names inside PQconnectStart / PQconnectPoll, on the event loop; this
// resolves them first, off the loop (core/resolver.hpp), and hands libpq the addresses as
// hostaddr= next to host= (libpq then connects to hostaddr and keeps using host for TLS
// verification, the passfile and messages).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pgbust {
class Lookup;  // core/resolver.hpp
}

namespace pgbust::pg {

class HostLookups {
 public:
  // Starts a lookup for every host name among the conninfo's hosts (its host=, else PGHOST).
  // Nothing to look up (done() at once, params() empty) when there is no host, when hostaddr
  // is given (conninfo or PGHOSTADDR), when a service (conninfo or PGSERVICE) may give the
  // host, or when every host is a numeric address or a unix socket directory ('/' or '@').
  explicit HostLookups(const std::string& conninfo);
  ~HostLookups();
  HostLookups(const HostLookups&) = delete;
  HostLookups& operator=(const HostLookups&) = delete;

  bool done() const;  // every lookup answered
  // "db.example:5432" (hosts and port as given), for log lines while resolving; "" when
  // nothing is looked up.
  std::string server() const;
  // The fd to poll for POLLIN: a pending lookup's, or once all are answered a readable one
  // (-1 when nothing was looked up).
  int fd() const;
  // Keywords to pass after the conninfo: host= with each name repeated once per address it
  // resolved to, hostaddr= with those addresses (empty for sockets and numeric hosts) and, when
  // port= is a per-host list, port= expanded the same way. Names that did not resolve are left
  // out; when none is left, throws ConnectionError("cannot resolve 'name': ...").
  std::vector<std::pair<std::string, std::string>> params();

 private:
  struct Entry {
    std::string host;
    std::string port;                // "" when the port is not a per-host list
    std::unique_ptr<Lookup> lookup;  // null: no lookup (socket, numeric, empty)
  };
  std::vector<Entry> entries_;
  bool per_host_ports_ = false;
  std::string server_;
};

}  // namespace pgbust::pg
