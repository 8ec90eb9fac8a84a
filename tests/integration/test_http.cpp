// The metrics/health HTTP server over real loopback sockets, driven by Loop::run_once while a
// client thread talks to it.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <future>
#include <memory>
#include <stdexcept>
#include <vector>

#include "harness.hpp"
#include "pgbust/core/error.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/ops/http.hpp"
#include "pgbust/ops/metrics.hpp"

using namespace std::chrono_literals;
using pgbust::http::Options;
using pgbust::http::Request;
using pgbust::http::Response;
using pgbust::http::Server;

namespace {

struct Socket {
  int fd;
  explicit Socket(int f) : fd(f) {}
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
};

// A blocking client socket connected to 127.0.0.1:port, with a receive timeout.
int dial(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    throw std::runtime_error("connect failed");
  }
  return fd;
}

// Everything the server sends until it closes (or the 10 s receive timeout passes).
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string exchange(int port, const std::string& raw) {
  Socket s(dial(port));
  ::send(s.fd, raw.data(), raw.size(), MSG_NOSIGNAL);
  return read_all(s.fd);
}

// Run the loop until the client thread has its answer (bounded).
template <class T>
T serve_until(pgbust::Loop& loop, std::future<T>& f) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (f.wait_for(0ms) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("no answer in 20s");
    loop.run_once(10ms);
  }
  return f.get();
}

std::string request(pgbust::Loop& loop, int port, const std::string& raw) {
  auto f = std::async(std::launch::async, [=] { return exchange(port, raw); });
  return serve_until(loop, f);
}

std::string body_of(const std::string& response) {
  auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

// The server, registered in a loop, removed on scope exit.
struct Fixture {
  pgbust::Loop loop;
  pgbust::metrics::Registry registry;
  bool healthy = true;
  Server server;
  explicit Fixture(Options o = {"127.0.0.1:0"}) : server(std::move(o)) {
    loop.add(&server);
    server.handle("/metrics", [this](const Request&) {
      return Response{200, std::string(pgbust::metrics::kContentType), registry.render()};
    });
    server.handle("/healthz", [this](const Request&) {
      return healthy ? Response{200, "text/plain; charset=utf-8", "ok\n"}
                     : Response{503, "text/plain; charset=utf-8", "redis down\n"};
    });
    server.handle("/echo", [](const Request& r) {
      return Response{200, "text/plain", r.method + " " + r.path + " " + r.query};
    });
    server.handle("/boom", [](const Request&) -> Response { throw std::runtime_error("kaput"); });
  }
  ~Fixture() { loop.remove(&server); }
};

}  // namespace

TEST_CASE("http: GET /metrics and /healthz over a real socket") {
  Fixture fx;
  CHECK(fx.server.port() > 0);
  CHECK(fx.server.address() == "127.0.0.1:" + std::to_string(fx.server.port()));
  fx.registry.counter("pgbust_transactions_total", "Transactions.").inc(7);

  std::string r = request(fx.loop, fx.server.port(),
                          "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
  std::string body = fx.registry.render();
  CHECK(r.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(r.find("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
        std::string::npos);
  CHECK(r.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n") != std::string::npos);
  CHECK(body_of(r) == body);
  CHECK(body.find("pgbust_transactions_total 7\n") != std::string::npos);

  CHECK(body_of(request(fx.loop, fx.server.port(), "GET /healthz HTTP/1.0\r\n\r\n")) == "ok\n");
  fx.healthy = false;
  CHECK(request(fx.loop, fx.server.port(), "GET /healthz HTTP/1.0\r\n\r\n")
            .starts_with("HTTP/1.1 503 Service Unavailable\r\n"));

  // Bare LF line ends, a query string, HEAD without a body.
  CHECK(body_of(request(fx.loop, fx.server.port(), "GET /echo?a=1&b HTTP/1.0\n\n")) ==
        "GET /echo a=1&b");
  std::string head = request(fx.loop, fx.server.port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  CHECK(head.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(head.find("Content-Length: " + std::to_string(body.size())) != std::string::npos);
  CHECK(body_of(head).empty());
  CHECK(fx.server.connections() == 0);
}

TEST_CASE("http: errors are answered with the right status") {
  Fixture fx;
  struct Case {
    std::string name;
    std::string raw;
    std::string status_line;
  };
  const Case cases[] = {
      {"unknown path", "GET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"},
      {"garbage", "hello there\r\n\r\n", "HTTP/1.1 400 Bad Request"},
      {"no version", "GET /metrics\r\n\r\n", "HTTP/1.1 400 Bad Request"},
      {"relative target", "GET metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
      {"double space", "GET  /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
      {"bad header", "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", "HTTP/1.1 400 Bad Request"},
      {"binary", std::string("\x16\x03\x01\x00\x00\r\n\r\n", 9), "HTTP/1.1 400 Bad Request"},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/1.1 400 Bad Request"},
      {"HTTP/2 version", "GET /metrics HTTP/2.0\r\n\r\n",
       "HTTP/1.1 505 HTTP Version Not Supported"},
      {"POST", "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
       "HTTP/1.1 405 Method Not Allowed"},
      {"body after the head",
       "GET /nope HTTP/1.1\r\nContent-Length: 3000\r\n\r\n" + std::string(3000, 'b'),
       "HTTP/1.1 404 Not Found"},
      {"handler throws", "GET /boom HTTP/1.1\r\n\r\n", "HTTP/1.1 500 Internal Server Error"},
      {"head too large", "GET /metrics HTTP/1.1\r\nX: " + std::string(100000, 'a') + "\r\n\r\n",
       "HTTP/1.1 431 Request Header Fields Too Large"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::string r = request(fx.loop, fx.server.port(), c.raw);
    CHECK(r.substr(0, r.find("\r\n")) == c.status_line);
    CHECK(r.find("\r\nConnection: close\r\n") != std::string::npos);
  }
  CHECK(request(fx.loop, fx.server.port(), "PUT / HTTP/1.1\r\n\r\n")
            .find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
  CHECK(body_of(request(fx.loop, fx.server.port(), "GET /boom HTTP/1.1\r\n\r\n")).find("kaput") !=
        std::string::npos);
}

TEST_CASE("http: a slow client is cut off after the timeout; a client that leaves is dropped") {
  Fixture fx(Options{"127.0.0.1:0", 300ms, 8192, 64});
  Socket slow(dial(fx.server.port()));
  ::send(slow.fd, "GET /met", 8, MSG_NOSIGNAL);
  CHECK(pgbust::test::eventually([&] {
    fx.loop.run_once(10ms);
    return fx.server.connections() == 1;
  }));
  CHECK(pgbust::test::eventually([&] {
    fx.loop.run_once(50ms);
    return fx.server.connections() == 0;
  }));
  char c;
  CHECK(::recv(slow.fd, &c, 1, 0) == 0);  // closed without an answer

  {
    Socket gone(dial(fx.server.port()));
    ::send(gone.fd, "GET /", 5, MSG_NOSIGNAL);
    CHECK(pgbust::test::eventually([&] {
      fx.loop.run_once(10ms);
      return fx.server.connections() == 1;
    }));
  }
  CHECK(pgbust::test::eventually([&] {
    fx.loop.run_once(10ms);
    return fx.server.connections() == 0;
  }));
}

TEST_CASE("http: idle connections cannot starve /healthz: the oldest one still reading goes") {
  // Issue 12: idle clients holding every slot made health checks fail. At the limit, the
  // connection accepted first among those still reading its request makes room.
  constexpr std::size_t kMax = 8;
  Fixture fx(Options{"127.0.0.1:0", 30s, 8192, kMax});
  std::vector<std::unique_ptr<Socket>> idle;
  for (std::size_t i = 0; i < kMax; ++i) {
    idle.push_back(std::make_unique<Socket>(dial(fx.server.port())));
    CHECK(pgbust::test::eventually([&] {
      fx.loop.run_once(10ms);
      return fx.server.connections() == i + 1;
    }));
  }
  // Every probe finds the server full of idle clients (one more arrives after each).
  for (std::size_t probe = 0; probe < 3; ++probe) {
    CAPTURE(probe);
    CHECK(body_of(request(fx.loop, fx.server.port(), "GET /healthz HTTP/1.1\r\n\r\n")) == "ok\n");
    idle.push_back(std::make_unique<Socket>(dial(fx.server.port())));
    CHECK(pgbust::test::eventually([&] {
      fx.loop.run_once(10ms);
      return fx.server.connections() == kMax;
    }));
  }
  // The three oldest idle clients were closed without an answer; the next one is still open.
  char c;
  for (std::size_t i = 0; i < 3; ++i) CHECK(::recv(idle[i]->fd, &c, 1, 0) == 0);
  CHECK(::recv(idle[3]->fd, &c, 1, MSG_DONTWAIT) == -1);
  CHECK(errno == EAGAIN);
}

TEST_CASE("http: the request head has a short deadline of its own") {
  Fixture fx(Options{"127.0.0.1:0", 60s, 8192, 64, 200ms});
  Socket idle(dial(fx.server.port()));
  Socket partial(dial(fx.server.port()));
  ::send(partial.fd, "GET /hea", 8, MSG_NOSIGNAL);
  // Well before the 60 s exchange timeout (eventually gives up after 15 s).
  CHECK(pgbust::test::eventually([&] {
    fx.loop.run_once(50ms);
    return fx.server.connections() == 0;
  }));
  char c;
  CHECK(::recv(idle.fd, &c, 1, 0) == 0);
  CHECK(::recv(partial.fd, &c, 1, 0) == 0);
  CHECK(body_of(request(fx.loop, fx.server.port(), "GET /healthz HTTP/1.1\r\n\r\n")) == "ok\n");
}

TEST_CASE("http: connections beyond the limit get 503 when every one is being answered") {
  Fixture fx(Options{"127.0.0.1:0", 5s, 8192, 1});
  fx.server.handle("/big", [](const Request&) {
    return Response{200, "text/plain", std::string(32 << 20, 'x')};  // more than socket buffers
  });
  Socket reader(dial(fx.server.port()));
  const std::string get_big = "GET /big HTTP/1.1\r\n\r\n";
  ::send(reader.fd, get_big.data(), get_big.size(), MSG_NOSIGNAL);
  char first;
  auto got = std::async(std::launch::async, [&] { return ::recv(reader.fd, &first, 1, 0); });
  CHECK(serve_until(fx.loop, got) == 1);  // being answered (and not read on)
  CHECK(request(fx.loop, fx.server.port(), "GET /healthz HTTP/1.1\r\n\r\n")
            .starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
  ::close(reader.fd);
  reader.fd = -1;
  CHECK(pgbust::test::eventually([&] {
    fx.loop.run_once(10ms);
    return fx.server.connections() == 0;
  }));
  CHECK(body_of(request(fx.loop, fx.server.port(), "GET /healthz HTTP/1.1\r\n\r\n")) == "ok\n");
}

TEST_CASE("http: listen addresses") {
  struct Case {
    std::string listen;
    bool ok;
    std::string host, port;
  };
  const Case cases[] = {
      {"127.0.0.1:9187", true, "127.0.0.1", "9187"},
      {":9187", true, "127.0.0.1", "9187"},
      {"[::1]:80", true, "::1", "80"},
      {"localhost:0", true, "localhost", "0"},
      {"::1:80", false, "", ""},
      {"127.0.0.1", false, "", ""},
      {"127.0.0.1:", false, "", ""},
      {"127.0.0.1:http", false, "", ""},
      {"127.0.0.1:70000", false, "", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.listen);
    std::string host, port;
    REQUIRE(pgbust::http::split_host_port(c.listen, host, port) == c.ok);
    if (c.ok) {
      CHECK(host == c.host);
      CHECK(port == c.port);
    }
  }
  CHECK_THROWS_WITH_AS(Server(Options{"nonsense"}), doctest::Contains("nonsense"), pgbust::Error);
  Server first(Options{"127.0.0.1:0"});
  std::string taken = first.address();
  CHECK_THROWS_WITH_AS(Server(Options{taken}), doctest::Contains("Address already in use"),
                       pgbust::Error);
}
