// sd_notify messages observed on a real AF_UNIX datagram socket given as NOTIFY_SOCKET.
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "harness.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/ops/sdnotify.hpp"

using namespace std::chrono_literals;
using pgbust::sdnotify::Notifier;

namespace {

// The service manager's end: a bound datagram socket, NOTIFY_SOCKET pointing at it while alive.
class FakeSystemd {
 public:
  explicit FakeSystemd(const std::vector<std::pair<std::string, std::string>>& extra_env = {}) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    path_ = (dir_.path() / "notify.sock").string();
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("bind failed");
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    for (const auto& [k, v] : extra_env) {
      ::setenv(k.c_str(), v.c_str(), 1);
      extra_.push_back(k);
    }
  }
  ~FakeSystemd() {
    ::unsetenv("NOTIFY_SOCKET");
    for (const auto& k : extra_) ::unsetenv(k.c_str());
    ::close(fd_);
  }
  // The next datagram, or nullopt when none arrives within `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout = 5s) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }

 private:
  pgbust::test::TempDir dir_;
  std::string path_;
  std::vector<std::string> extra_;
  int fd_ = -1;
};

}  // namespace

TEST_CASE("sdnotify: READY, STATUS, RELOADING, STOPPING reach NOTIFY_SOCKET") {
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  FakeSystemd systemd;
  Notifier n;
  REQUIRE(n.enabled());
  CHECK(n.watchdog_interval() == 0us);

  CHECK(n.ready());
  CHECK(systemd.next() == "READY=1");
  CHECK(n.status("streaming slot=pgbust lag=0B"));
  CHECK(systemd.next() == "STATUS=streaming slot=pgbust lag=0B");
  CHECK(n.status("two\nlines\r\nREADY=1"));  // a newline cannot smuggle in an assignment
  CHECK(systemd.next() == "STATUS=two lines  READY=1");

  CHECK(n.reloading());
  std::string reloading = systemd.next().value_or("");
  CHECK(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="));
  std::string usec = reloading.substr(std::strlen("RELOADING=1\nMONOTONIC_USEC="));
  CHECK_FALSE(usec.empty());
  CHECK(usec.find_first_not_of("0123456789") == std::string::npos);
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  CHECK(std::stoull(usec) <= static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                                 static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL);

  CHECK_FALSE(n.watchdog());  // no WATCHDOG_USEC: nothing sent
  CHECK(n.stopping());
  CHECK(systemd.next() == "STOPPING=1");
  CHECK(systemd.next(100ms) == std::nullopt);
}

TEST_CASE("sdnotify: the watchdog interval is half of WATCHDOG_USEC, pinged from a loop timer") {
  FakeSystemd systemd({{"WATCHDOG_USEC", "200000"}, {"WATCHDOG_PID", std::to_string(::getpid())}});
  Notifier n;
  CHECK(n.watchdog_interval() == 100000us);
  CHECK(n.watchdog());
  CHECK(systemd.next() == "WATCHDOG=1");

  pgbust::sdnotify::WatchdogTimer timer(n);
  CHECK(timer.fd() == -1);
  CHECK(timer.deadline() != pgbust::kNever);
  pgbust::Loop loop;
  loop.add(&timer);
  CHECK(pgbust::test::eventually([&] { return loop.run_once(50ms) > 0; }, 5s));
  loop.remove(&timer);
  CHECK(systemd.next() == "WATCHDOG=1");
}

TEST_CASE("sdnotify: a watchdog meant for another process is ignored") {
  FakeSystemd systemd({{"WATCHDOG_USEC", "200000"}, {"WATCHDOG_PID", "1"}});
  Notifier n;
  CHECK(n.watchdog_interval() == 0us);
  CHECK_FALSE(n.watchdog());
  pgbust::sdnotify::WatchdogTimer timer(n);
  CHECK(timer.deadline() == pgbust::kNever);
}

TEST_CASE("sdnotify: everything is a no-op without NOTIFY_SOCKET") {
  ::unsetenv("NOTIFY_SOCKET");
  Notifier n;
  CHECK_FALSE(n.enabled());
  CHECK_FALSE(n.ready());
  CHECK_FALSE(n.status("x"));
  CHECK_FALSE(n.reloading());
  CHECK_FALSE(n.stopping());
  CHECK_FALSE(n.watchdog());
}
