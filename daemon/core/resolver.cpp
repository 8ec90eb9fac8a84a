// Host name resolution on worker threads, answered through an eventfd (see resolver.hpp).
#include "pgbust/core/resolver.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include "pgbust/core/error.hpp"

namespace pgbust {

namespace {

std::atomic<GetaddrinfoFn> g_getaddrinfo{nullptr};

// Lookups whose worker is still running. A resolver that never answers would otherwise let
// every reconnect add a thread; past this many, a connect attempt fails at once (and is
// retried with backoff like any failed connect).
std::atomic<int> g_running{0};
constexpr int kMaxRunning = 32;

struct EventFd {
  int fd = -1;
  EventFd() : fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~EventFd() {
    if (fd >= 0) ::close(fd);
  }
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;
  void signal() const noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
  }
};

struct AddrinfoDeleter {
  void operator()(addrinfo* a) const noexcept { freeaddrinfo(a); }
};

std::string numeric_text(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST];
  if (getnameinfo(sa, len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return "?";
  return host;
}

// getaddrinfo's answer as addresses; `rc` and `err` (errno for EAI_SYSTEM) when it failed.
struct Answer {
  int rc = 0;
  int err = 0;
  std::vector<ResolvedAddress> addrs;
};

Answer resolve(const std::string& host, int port, int flags, GetaddrinfoFn fn) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | (port > 0 ? AI_NUMERICSERV : 0);
  std::string service = port > 0 ? std::to_string(port) : "";
  addrinfo* res = nullptr;
  Answer a;
  errno = 0;
  a.rc = fn(host.c_str(), port > 0 ? service.c_str() : nullptr, &hints, &res);
  a.err = errno;
  if (a.rc != 0) return a;
  std::unique_ptr<addrinfo, AddrinfoDeleter> owned(res);
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    ResolvedAddress r;
    std::memcpy(&r.storage, ai->ai_addr, ai->ai_addrlen);
    r.len = ai->ai_addrlen;
    r.family = ai->ai_family;
    r.text = numeric_text(ai->ai_addr, ai->ai_addrlen);
    a.addrs.push_back(std::move(r));
  }
  return a;
}

}  // namespace

struct Lookup::Shared {
  EventFd event;
  std::mutex mu;
  bool done = false;
  Answer answer;
};

bool is_numeric_host(const std::string& host) {
  in6_addr buf;
  return ::inet_pton(AF_INET, host.c_str(), &buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), &buf) == 1;
}

Lookup::Lookup(std::string host, int port)
    : host_(std::move(host)), shared_(std::make_shared<Shared>()) {
  if (shared_->event.fd < 0) {
    int err = errno;
    throw ConnectionError("cannot resolve '" + host_ + "': eventfd: " + std::strerror(err));
  }
  if (is_numeric_host(host_)) {  // never blocks: answered here
    shared_->answer = resolve(host_, port, AI_NUMERICHOST, &::getaddrinfo);
    shared_->done = true;
    shared_->event.signal();
    return;
  }
  if (g_running.fetch_add(1) >= kMaxRunning) {
    --g_running;
    throw ConnectionError("cannot resolve '" + host_ + "': " + std::to_string(kMaxRunning) +
                          " lookups are already pending (the DNS resolver does not answer)");
  }
  GetaddrinfoFn fn = g_getaddrinfo.load();
  if (fn == nullptr) fn = &::getaddrinfo;
  // The worker must not take the signals the loop reads from its signalfd: it starts with
  // every signal blocked (a thread inherits its creator's mask).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    std::thread([shared = shared_, host = host_, port, fn] {
      Answer a = resolve(host, port, 0, fn);
      {
        std::lock_guard lock(shared->mu);
        shared->answer = std::move(a);
        shared->done = true;
      }
      shared->event.signal();
      --g_running;
    }).detach();
  } catch (const std::system_error& e) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    --g_running;
    throw ConnectionError("cannot resolve '" + host_ +
                          "': cannot start a resolver thread: " + e.what());
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

Lookup::~Lookup() = default;

int Lookup::fd() const {
  return shared_->event.fd;
}

bool Lookup::done() const {
  std::lock_guard lock(shared_->mu);
  return shared_->done;
}

std::vector<ResolvedAddress> Lookup::take() {
  Answer a;
  {
    std::lock_guard lock(shared_->mu);
    if (!shared_->done) throw ConnectionError("cannot resolve '" + host_ + "': still resolving");
    a = std::move(shared_->answer);
  }
  if (a.rc != 0) {
    std::string why = a.rc == EAI_SYSTEM && a.err != 0 ? std::strerror(a.err) : gai_strerror(a.rc);
    throw ConnectionError("cannot resolve '" + host_ + "': " + why);
  }
  if (a.addrs.empty()) throw ConnectionError("cannot resolve '" + host_ + "': it has no address");
  return std::move(a.addrs);
}

void set_getaddrinfo_for_tests(GetaddrinfoFn fn) {
  g_getaddrinfo.store(fn);
}

}  // namespace pgbust
