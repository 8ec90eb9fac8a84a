// Host name resolution off the event loop: getaddrinfo on a worker thread, the answer handed
// back through an eventfd the loop polls, so a slow DNS never stalls the loop.
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

namespace pgbust {

// One address of a resolved name.
struct ResolvedAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
  std::string text;  // the numeric address ("127.0.0.1", "::1"), for messages and hostaddr=
};

// One TCP lookup of `host` (and `port`; 0: none). A numeric address is answered at once; a
// name is looked up on a worker thread (the one place pgbust runs code off the loop thread:
// getaddrinfo has no non-blocking form). The loop polls fd() for POLLIN while !done().
// Destroying a Lookup never waits: a lookup still running finishes on its own thread and its
// answer is dropped, so shutdown is never held up by DNS.
class Lookup {
 public:
  // Throws ConnectionError when the worker cannot be started (too many lookups pending).
  Lookup(std::string host, int port);
  ~Lookup();
  Lookup(const Lookup&) = delete;
  Lookup& operator=(const Lookup&) = delete;

  const std::string& host() const { return host_; }
  int fd() const;     // readable once done()
  bool done() const;  // the answer is there
  // The addresses in getaddrinfo's order. Throws ConnectionError("cannot resolve 'host':
  // <resolver's text>") when the name has none or the lookup failed. Call once done().
  std::vector<ResolvedAddress> take();

 private:
  struct Shared;
  std::string host_;
  std::shared_ptr<Shared> shared_;
};

// Tests only: the function lookups call instead of getaddrinfo (one that sleeps, to prove the
// loop keeps serving); nullptr restores getaddrinfo. Numeric addresses never go through it.
using GetaddrinfoFn = int (*)(const char*, const char*, const addrinfo*, addrinfo**);
void set_getaddrinfo_for_tests(GetaddrinfoFn fn);

// True when `host` is a numeric IPv4 or IPv6 address (no lookup needed).
bool is_numeric_host(const std::string& host);

}  // namespace pgbust
