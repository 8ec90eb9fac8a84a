// The metrics/health HTTP server: an epoll set over the listener and its connections, driven
// by the loop as one Pollable (see http.hpp).
#include "pgbust/ops/http.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "pgbust/core/error.hpp"

namespace pgbust::http {

namespace {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct AddrinfoDeleter {
  void operator()(addrinfo* a) const noexcept { ::freeaddrinfo(a); }
};

constexpr int kAcceptPerRound = 64;
constexpr auto kDrainTime = std::chrono::milliseconds(1000);
constexpr auto kAcceptPause = std::chrono::milliseconds(100);  // after EMFILE and friends

std::string errno_text() {
  return std::strerror(errno);
}

std::string format_address(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
  port = ntohs(a->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

std::string serialize(const Response& r, bool with_body) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) +
                    "\r\nContent-Type: " + r.content_type +
                    "\r\nContent-Length: " + std::to_string(r.body.size()) +
                    "\r\nConnection: close\r\n";
  if (r.status == 405) out += "Allow: GET, HEAD\r\n";
  out += "\r\n";
  if (with_body) out += r.body;
  return out;
}

Response plain(int status, std::string body) {
  return Response{status, "text/plain; charset=utf-8", std::move(body) + "\n"};
}

bool is_token_upper(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

}  // namespace

std::optional<HeadEnd> find_head_end(std::string_view received, std::size_t scan_from) {
  std::size_t crlf = received.find("\r\n\r\n", scan_from);
  std::size_t lf = received.find("\n\n", scan_from);
  std::size_t length = std::min(crlf, lf);
  if (length == std::string_view::npos) return std::nullopt;
  return HeadEnd{length, length == crlf ? std::size_t{4} : std::size_t{2}};
}

ParsedHead parse_request_head(std::string_view head) {
  ParsedHead out;
  auto refuse = [&out](int status, std::string body) {
    out.refusal = plain(status, std::move(body));
    return std::move(out);
  };
  std::size_t eol = head.find('\n');
  std::string_view line = head.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // Every header line must be "Name: value".
  std::size_t first_header = eol == std::string_view::npos ? head.size() : eol + 1;
  for (std::size_t pos = first_header; pos < head.size();) {
    std::size_t end = head.find('\n', pos);
    std::string_view h =
        head.substr(pos, (end == std::string_view::npos ? head.size() : end) - pos);
    if (!h.empty() && h.back() == '\r') h.remove_suffix(1);
    if (!h.empty() && (h.find(':') == std::string_view::npos || h.front() == ':'))
      return refuse(400, "malformed header line");
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return refuse(400, "malformed request line");
  Request& req = out.request;
  req.method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token_upper(req.method) || target.empty() || target.front() != '/' ||
      !version.starts_with("HTTP/"))
    return refuse(400, "malformed request line");
  if (version != "HTTP/1.0" && version != "HTTP/1.1") return refuse(505, "HTTP/1.x only");
  out.with_body = req.method != "HEAD";
  if (req.method != "GET" && req.method != "HEAD") return refuse(405, "GET or HEAD only");
  std::size_t q = target.find('?');
  req.path = target.substr(0, q);
  if (q != std::string_view::npos) req.query = target.substr(q + 1);
  return out;
}

bool split_host_port(const std::string& listen, std::string& host, std::string& port) {
  std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) return false;
  host = listen.substr(0, colon);
  port = listen.substr(colon + 1);
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      port.size() > 5 || std::stoi(port) > 65535)
    return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  else if (host.find(':') != std::string::npos)
    return false;  // a bare IPv6 address needs brackets
  if (host.empty()) host = "127.0.0.1";
  return true;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return status < 400 ? "OK" : "Error";
  }
}

// ---- one connection: read the head, answer, close --------------------------------------

struct Connection {
  Fd fd;
  std::string in;
  std::string out;
  std::size_t written = 0;
  enum Phase { kReading, kWriting, kDraining } phase = kReading;
  bool unread_input = false;  // the client sent more than we read: drain before closing
  TimePoint accepted;
  TimePoint deadline;  // head_timeout after accepting, then timeout after accepting
};

struct Server::Impl {
  Options opts;
  Fd listener;
  Fd epoll;
  std::string bound;
  int port = 0;
  std::map<std::string, Handler> handlers;
  std::unordered_map<int, std::unique_ptr<Connection>> conns;
  TimePoint accept_resume = kNever;  // set while the listener is out of the epoll set

  void watch(int fd, std::uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll.get(), op, fd, &ev) != 0)
      throw Error("HTTP server on " + bound + ": epoll_ctl: " + errno_text());
  }

  void close(int fd) noexcept {
    auto it = conns.find(fd);
    if (it == conns.end()) return;
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, fd, nullptr);
    conns.erase(it);  // closes the socket
  }

  void accept_some() {
    for (int i = 0; i < kAcceptPerRound; ++i) {
      Fd c(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (c.get() < 0) {
        // Out of descriptors or memory: the listener would stay readable and spin the loop,
        // so stop watching it for a moment. EAGAIN and aborted handshakes just end the round.
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, listener.get(), nullptr);
          accept_resume = Clock::now() + kAcceptPause;
        }
        return;
      }
      if (conns.size() >= opts.max_connections && !drop_oldest_reading()) {
        std::string busy = serialize(plain(503, "too many connections"), true);
        [[maybe_unused]] auto n = ::send(c.get(), busy.data(), busy.size(), MSG_NOSIGNAL);
        continue;  // closed by Fd
      }
      auto conn = std::make_unique<Connection>();
      conn->accepted = Clock::now();
      conn->deadline = conn->accepted + std::min(opts.head_timeout, opts.timeout);
      int fd = c.get();
      conn->fd = std::move(c);
      try {
        watch(fd, EPOLLIN, EPOLL_CTL_ADD);
      } catch (const Error&) {
        continue;
      }
      conns.emplace(fd, std::move(conn));
    }
  }

  // Makes room for a new connection: closes the one accepted first among those still reading
  // their request head (nothing is owed to them yet). False when every connection is being
  // answered.
  bool drop_oldest_reading() {
    Connection* oldest = nullptr;
    for (const auto& [fd, c] : conns)
      if (c->phase == Connection::kReading && (!oldest || c->accepted < oldest->accepted))
        oldest = c.get();
    if (oldest == nullptr) return false;
    close(oldest->fd.get());
    return true;
  }

  // The head is complete (or too big): build the answer and switch to writing.
  void respond(Connection& c, Response r, bool with_body) {
    c.out = serialize(r, with_body);
    c.phase = Connection::kWriting;
    c.deadline = c.accepted + opts.timeout;
    c.in.clear();
    c.in.shrink_to_fit();
  }

  Response dispatch(std::string_view head, bool& with_body) {
    ParsedHead parsed = parse_request_head(head);
    with_body = parsed.with_body;
    if (parsed.refusal) return std::move(*parsed.refusal);
    const Request& req = parsed.request;
    auto it = handlers.find(req.path);
    if (it == handlers.end()) return plain(404, "not found: " + req.path);
    try {
      return it->second(req);
    } catch (const std::exception& e) {
      return plain(500, std::string("handler failed: ") + e.what());
    }
  }

  // Read what is there; answer once the blank line ending the head arrives.
  void read_some(Connection& c) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (n == 0) return close(c.fd.get());  // the client gave up before finishing
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        return close(c.fd.get());
      }
      std::size_t scan_from = c.in.size() >= 3 ? c.in.size() - 3 : 0;
      c.in.append(buf, static_cast<std::size_t>(n));
      auto end = find_head_end(c.in, scan_from);
      if (end && end->length <= opts.max_request_bytes) {
        bool with_body = true;
        c.unread_input = c.in.size() > end->length + end->terminator;  // e.g. a request body
        Response r = dispatch(std::string_view(c.in).substr(0, end->length), with_body);
        respond(c, std::move(r), with_body);
        return write_some(c);
      }
      if (c.in.size() > opts.max_request_bytes) {
        c.unread_input = true;  // the rest of the head is probably still on its way
        respond(c,
                plain(431, "request head larger than " + std::to_string(opts.max_request_bytes) +
                               " bytes"),
                true);
        return write_some(c);
      }
    }
  }

  void write_some(Connection& c) {
    while (c.written < c.out.size()) {
      ssize_t n =
          ::send(c.fd.get(), c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          try {
            watch(c.fd.get(), EPOLLOUT, EPOLL_CTL_MOD);
          } catch (const Error&) {
            close(c.fd.get());
          }
          return;
        }
        return close(c.fd.get());
      }
      c.written += static_cast<std::size_t>(n);
    }
    ::shutdown(c.fd.get(), SHUT_WR);
    if (!c.unread_input) return close(c.fd.get());
    // Closing with unread input would send a reset that can destroy the answer before the
    // client reads it: read and discard until the client closes (briefly).
    c.phase = Connection::kDraining;
    c.deadline = std::min(c.deadline, Clock::now() + kDrainTime);
    try {
      watch(c.fd.get(), EPOLLIN, EPOLL_CTL_MOD);
    } catch (const Error&) {
      return close(c.fd.get());
    }
    drain(c);
  }

  void drain(Connection& c) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      return close(c.fd.get());
    }
  }
};

Server::Server(Options options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.opts = std::move(options);
  std::string host, port;
  if (!split_host_port(m.opts.listen, host, port))
    throw Error("HTTP listen address '" + m.opts.listen + "': expected HOST:PORT or [V6]:PORT");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* raw = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &raw); rc != 0)
    throw Error("HTTP listen address '" + m.opts.listen + "': " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, AddrinfoDeleter> list(raw);
  std::string last = "no address";
  for (addrinfo* a = list.get(); a != nullptr; a = a->ai_next) {
    Fd s(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (s.get() < 0) {
      last = "socket: " + errno_text();
      continue;
    }
    int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.get(), a->ai_addr, a->ai_addrlen) != 0) {
      last = "bind: " + errno_text();
      continue;
    }
    if (::listen(s.get(), 64) != 0) {
      last = "listen: " + errno_text();
      continue;
    }
    m.listener = std::move(s);
    break;
  }
  if (m.listener.get() < 0) throw Error("HTTP server on " + m.opts.listen + ": " + last);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(m.listener.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  m.bound = format_address(ss);
  m.port = ss.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                                   : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  m.epoll = Fd(::epoll_create1(EPOLL_CLOEXEC));
  if (m.epoll.get() < 0) throw Error("HTTP server on " + m.bound + ": epoll: " + errno_text());
  m.watch(m.listener.get(), EPOLLIN, EPOLL_CTL_ADD);
}

Server::~Server() = default;

void Server::handle(const std::string& path, Handler handler) {
  impl_->handlers[path] = std::move(handler);
}

int Server::port() const {
  return impl_->port;
}
std::string Server::address() const {
  return impl_->bound;
}
std::size_t Server::connections() const {
  return impl_->conns.size();
}

int Server::fd() const {
  return impl_->epoll.get();
}
short Server::events() const {
  return POLLIN;
}

void Server::on_ready(short) {
  epoll_event evs[64];
  int n = ::epoll_wait(impl_->epoll.get(), evs, 64, 0);
  for (int i = 0; i < n; ++i) {
    int fd = evs[i].data.fd;
    if (fd == impl_->listener.get()) {
      impl_->accept_some();
      continue;
    }
    auto it = impl_->conns.find(fd);
    if (it == impl_->conns.end()) continue;  // closed earlier in this batch
    Connection& c = *it->second;
    switch (c.phase) {
      case Connection::kReading:
        impl_->read_some(c);
        break;
      case Connection::kWriting:
        impl_->write_some(c);
        break;
      case Connection::kDraining:
        impl_->drain(c);
        break;
    }
  }
}

TimePoint Server::deadline() const {
  TimePoint d = impl_->accept_resume;
  for (const auto& [fd, c] : impl_->conns) d = std::min(d, c->deadline);
  return d;
}

void Server::on_timer(TimePoint now) {
  if (impl_->accept_resume <= now) {
    impl_->accept_resume = kNever;
    try {
      impl_->watch(impl_->listener.get(), EPOLLIN, EPOLL_CTL_ADD);
    } catch (const Error&) {
      impl_->accept_resume = now + kAcceptPause;
    }
  }
  std::vector<int> expired;
  for (const auto& [fd, c] : impl_->conns)
    if (c->deadline <= now) expired.push_back(fd);
  for (int fd : expired) impl_->close(fd);  // too slow: no answer, just close
}

}  // namespace pgbust::http
