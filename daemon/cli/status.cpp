// `pgbust status`: ask the running daemon (its /status endpoint) how it is doing.
// Exit 0 when healthy, 1 when degraded, 3 when no daemon answers (LSB status codes).
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/options.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/ops/http.hpp"

namespace pgbust::cli {

namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

struct AddrInfoDeleter {
  void operator()(addrinfo* a) const noexcept { freeaddrinfo(a); }
};

// One GET with a deadline; returns false with `error` set when there is no answer.
bool http_get(const std::string& listen, const std::string& path, int timeout_ms, int& status,
              std::string& body, std::string& error) {
  std::string host, port;
  if (!http::split_host_port(listen, host, port)) {
    error = "status.listen '" + listen + "' is not HOST:PORT";
    return false;
  }
  if (host.empty()) host = "127.0.0.1";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* raw = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &raw); rc != 0) {
    error = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
    return false;
  }
  std::unique_ptr<addrinfo, AddrInfoDeleter> ai(raw);
  Fd s{::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol)};
  if (s.fd < 0) {
    error = std::strerror(errno);
    return false;
  }
  auto wait = [&](short ev) {
    pollfd p{s.fd, ev, 0};
    return ::poll(&p, 1, timeout_ms) == 1 && !(p.revents & (POLLERR | POLLNVAL));
  };
  if (::connect(s.fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
    error = std::strerror(errno);
    return false;
  }
  int soerr = 0;
  socklen_t len = sizeof soerr;
  if (!wait(POLLOUT) || getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
    error = soerr ? std::strerror(soerr) : "timed out connecting";
    return false;
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + listen + "\r\n\r\n";
  if (::send(s.fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    error = "sending the request failed";
    return false;
  }
  std::string resp;
  char buf[4096];
  while (wait(POLLIN)) {
    ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<std::size_t>(n));
  }
  auto sp = resp.find(' ');
  auto hdr_end = resp.find("\r\n\r\n");
  if (!resp.starts_with("HTTP/") || sp == std::string::npos || hdr_end == std::string::npos) {
    error = "no valid HTTP answer";
    return false;
  }
  status = std::atoi(resp.c_str() + sp + 1);
  body = resp.substr(hdr_end + 4);
  return true;
}

}  // namespace

int status(int argc, char** argv) {
  CommandLine cl("status",
                 "pgbust status: ask the running daemon how it is doing\n"
                 "exit 0 healthy, catching up or standby, 1 degraded or starting, 3 not running");
  std::string config_file, listen;
  int timeout_ms = 3000;
  // clang-format off
  cl.add()
    ("config,c", po::value(&config_file), "the daemon's config file (its status.listen address)")
    ("listen", po::value(&listen), "the daemon's metrics address HOST:PORT (instead of --config)")
    ("timeout", po::value(&timeout_ms)->default_value(3000), "milliseconds to wait for an answer");
  // clang-format on
  if (auto exit = cl.parse(argc, argv)) return *exit;
  if (listen.empty()) {
    if (config_file.empty()) {
      return cl.usage_error("give --config FILE or --listen HOST:PORT");
    }
    try {
      listen = config::load(config_file).status.listen;
    } catch (const config::ConfigError& e) {
      std::cerr << e.what() << "\n";
      return 2;
    }
    if (listen.empty()) {
      std::cerr << "pgbust status: status.listen is disabled in " << config_file
                << "; the daemon has no status endpoint to ask\n";
      return 2;
    }
  }
  int code = 0;
  std::string body, error;
  if (!http_get(listen, "/status", timeout_ms, code, body, error)) {
    std::cout << "pgbust is not running (no answer on " << listen << ": " << error << ")\n";
    return 3;
  }
  std::cout << body;
  if (!body.empty() && body.back() != '\n') std::cout << "\n";
  return code == 200 ? 0 : 1;
}

}  // namespace pgbust::cli
