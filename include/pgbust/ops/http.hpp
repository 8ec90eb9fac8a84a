// A tiny non-blocking HTTP server for /metrics and /healthz: one Pollable for the whole
// server (an epoll fd over the listener and its connections), GET/HEAD only, one request per
// connection, bounded request size, connection count and time.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/core/loop.hpp"

namespace pgbust::http {

struct Request {
  std::string method;  // "GET" or "HEAD"
  std::string path;    // without the query string
  std::string query;   // after '?', undecoded; "" when none
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using Handler = std::function<Response(const Request&)>;

struct Options {
  // "HOST:PORT", "[V6]:PORT" or ":PORT" (loopback); port 0 picks a free port.
  std::string listen = "127.0.0.1:9709";
  std::chrono::milliseconds timeout{5000};  // whole request+response; slow clients are cut off
  std::size_t max_request_bytes = 8192;     // request line + headers
  // At the limit a new connection takes the place of the oldest one still reading its
  // request (idle clients cannot starve /healthz); only when every connection is already
  // being answered is the new one answered 503 and closed.
  std::size_t max_connections = 64;
  // The request head must be complete this soon after accepting (a health check or a scrape
  // sends it at once); the whole exchange still has `timeout`.
  std::chrono::milliseconds head_timeout{1000};
};

// Add it to the Loop after construction and remove it before destroying it. Handlers run on
// the loop thread and must not block; an exception from one becomes a 500.
class Server : public Pollable {
 public:
  explicit Server(Options options);  // binds and listens; throws pgbust::Error naming the address
  ~Server() override;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serve `path` (exact match, e.g. "/metrics"); registering a path again replaces it.
  void handle(const std::string& path, Handler handler);

  int port() const;             // the bound port (useful with port 0)
  std::string address() const;  // "127.0.0.1:9709" as bound
  std::size_t connections() const;

  int fd() const override;
  short events() const override;
  void on_ready(short revents) override;
  TimePoint deadline() const override;
  void on_timer(TimePoint now) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where a request head ends in the bytes received so far: its length, and the length of the
// blank line ending it (4 for "\r\n\r\n", 2 for "\n\n", whichever comes first). Bytes arrive
// in pieces: `scan_from` (at most 3 before the end of what was there before the last piece)
// skips what an earlier call already searched. nullopt while the head is incomplete.
struct HeadEnd {
  std::size_t length;
  std::size_t terminator;
};
std::optional<HeadEnd> find_head_end(std::string_view received, std::size_t scan_from = 0);

// A complete request head (without its terminator) taken apart: the request, or the answer
// refusing it (400 malformed, 505 not HTTP/1.x, 405 not GET/HEAD). `with_body` is false for a
// well-formed HEAD request: its answer has no body.
struct ParsedHead {
  Request request;
  std::optional<Response> refusal;
  bool with_body = true;
};
ParsedHead parse_request_head(std::string_view head);

// "host:port" split for Options::listen; false when it is not of that shape.
bool split_host_port(const std::string& listen, std::string& host, std::string& port);

// Standard reason phrase ("OK", "Not Found", ...) for the status codes the server uses.
const char* reason_phrase(int status);

}  // namespace pgbust::http
