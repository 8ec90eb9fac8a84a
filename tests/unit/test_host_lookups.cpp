// The hostaddr= libpq gets for a conninfo's host names (pg/host_lookups.hpp): which hosts are
// looked up, how lists line up, and what a failed lookup says.
#include <doctest/doctest.h>
#include <poll.h>

#include <string>
#include <utility>
#include <vector>

#include "pgbust/core/error.hpp"
#include "pgbust/core/resolver.hpp"
#include "pgbust/pg/host_lookups.hpp"

namespace {

using Params = std::vector<std::pair<std::string, std::string>>;

// Every name is 192.0.2.7 (TEST-NET-1), except names starting with "bad", which do not resolve.
int fake_dns(const char* host, const char* service, const addrinfo* hints, addrinfo** res) {
  if (std::string(host).rfind("bad", 0) == 0) return EAI_NONAME;
  return getaddrinfo("192.0.2.7", service, hints, res);
}

struct FakeDns {
  FakeDns() { pgbust::set_getaddrinfo_for_tests(&fake_dns); }
  ~FakeDns() { pgbust::set_getaddrinfo_for_tests(nullptr); }
};

Params resolved(const std::string& conninfo) {
  pgbust::pg::HostLookups l(conninfo);
  for (int i = 0; i < 1000 && !l.done(); ++i) {
    pollfd p{l.fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
  }
  REQUIRE(l.done());
  pollfd p{l.fd(), POLLIN, 0};
  CHECK(::poll(&p, 1, 0) == 1);  // answered: readable, so a loop polling it goes on
  return l.params();
}

}  // namespace

TEST_CASE("host lookups: nothing to resolve leaves libpq's parameters alone") {
  FakeDns dns;
  for (const char* ci :
       {"host=127.0.0.1 port=5432", "host=/var/run/postgresql dbname=app", "host=@abstract",
        "host=::1,127.0.0.1", "host=db.example hostaddr=10.0.0.1", "dbname=app",
        "postgresql:///app?host=/tmp", "service=main"}) {
    CAPTURE(ci);
    pgbust::pg::HostLookups l(ci);
    CHECK(l.done());
    CHECK(l.fd() == -1);
    CHECK(l.params().empty());
  }
}

TEST_CASE("host lookups: names get hostaddr=, lists stay aligned") {
  FakeDns dns;
  CHECK(resolved("host=db.example port=5432 dbname=app") ==
        Params{{"host", "db.example"}, {"hostaddr", "192.0.2.7"}});
  CHECK(resolved("postgresql://db.example:6432/app") ==
        Params{{"host", "db.example"}, {"hostaddr", "192.0.2.7"}});
  CHECK(resolved("host=db.example,/tmp,10.0.0.2 port=5432,5433,5434") ==
        Params{{"host", "db.example,/tmp,10.0.0.2"},
               {"hostaddr", "192.0.2.7,,"},
               {"port", "5432,5433,5434"}});
  // A name that does not resolve is left out while another host remains.
  CHECK(resolved("host=bad.example,db.example port=1,2") ==
        Params{{"host", "db.example"}, {"hostaddr", "192.0.2.7"}, {"port", "2"}});
}

TEST_CASE("host lookups: no host resolves: the error names each") {
  FakeDns dns;
  std::string error;
  try {
    resolved("host=bad1.example,bad2.example");
  } catch (const pgbust::ConnectionError& e) {
    error = e.what();
  }
  CHECK(error.find("cannot resolve 'bad1.example': ") != std::string::npos);
  CHECK(error.find("cannot resolve 'bad2.example': ") != std::string::npos);
}
