// Name resolution off the loop (core/resolver.hpp): numeric addresses at once, names on a
// worker whose answer arrives through the fd, errors naming the host, and no waiting on exit.
#include <doctest/doctest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "pgbust/core/error.hpp"
#include "pgbust/core/resolver.hpp"

using namespace std::chrono_literals;

namespace {

std::atomic<bool> g_release{false};

int hanging(const char*, const char* service, const addrinfo* hints, addrinfo** res) {
  for (int i = 0; i < 500 && !g_release; ++i) std::this_thread::sleep_for(10ms);
  return getaddrinfo("127.0.0.1", service, hints, res);
}

int no_such_name(const char*, const char*, const addrinfo*, addrinfo**) {
  return EAI_NONAME;
}

struct HookGuard {
  explicit HookGuard(pgbust::GetaddrinfoFn fn) { pgbust::set_getaddrinfo_for_tests(fn); }
  ~HookGuard() {
    g_release = true;
    pgbust::set_getaddrinfo_for_tests(nullptr);
  }
};

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

}  // namespace

TEST_CASE("resolver: a numeric address is answered at once, without a lookup") {
  HookGuard guard(&no_such_name);  // would fail any real lookup
  pgbust::Lookup v4("127.0.0.1", 6379);
  REQUIRE(v4.done());
  CHECK(wait_readable(v4.fd(), 0ms));
  auto a = v4.take();
  REQUIRE(a.size() == 1);
  CHECK(a[0].text == "127.0.0.1");
  CHECK(a[0].family == AF_INET);
  pgbust::Lookup v6("::1", 0);
  REQUIRE(v6.done());
  CHECK(v6.take().at(0).text == "::1");
}

TEST_CASE("resolver: a name is answered through the fd") {
  pgbust::Lookup l("localhost", 5432);
  REQUIRE(wait_readable(l.fd(), 10'000ms));
  REQUIRE(l.done());
  auto a = l.take();
  REQUIRE_FALSE(a.empty());
  bool loopback = false;
  for (const auto& x : a) loopback = loopback || x.text == "127.0.0.1" || x.text == "::1";
  CHECK(loopback);
}

TEST_CASE("resolver: a name that does not resolve says which and why") {
  HookGuard guard(&no_such_name);
  pgbust::Lookup l("db.example.invalid", 5432);
  REQUIRE(wait_readable(l.fd(), 10'000ms));
  CHECK_THROWS_WITH_AS(l.take(), doctest::Contains("cannot resolve 'db.example.invalid': "),
                       pgbust::ConnectionError);
}

TEST_CASE("resolver: a hanging lookup is abandoned at once (shutdown never waits for DNS)") {
  g_release = false;
  HookGuard guard(&hanging);
  auto start = std::chrono::steady_clock::now();
  {
    pgbust::Lookup l("hangs.example", 5432);
    CHECK_FALSE(wait_readable(l.fd(), 50ms));
    CHECK_FALSE(l.done());
  }
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}
