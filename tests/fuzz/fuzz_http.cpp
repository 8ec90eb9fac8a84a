// Fuzz target: the HTTP server's request head handling (find_head_end, parse_request_head,
// daemon/ops/http.cpp). The first input byte picks how the rest arrives: in pieces of 1 to
// 16 bytes, searched from where the server searches after each piece. Properties: the head
// ends at the same place whether the bytes come at once or in pieces, and at a blank line;
// parsing never throws; what it accepts is a GET or HEAD of a path starting with '/', split
// at the first '?' of the target; what it refuses is answered 400, 405 or 505 with a body.
#include <cstdint>
#include <string>
#include <string_view>

#include "pgbust/ops/http.hpp"

using namespace pgbust::http;

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same(const std::optional<HeadEnd>& a, const std::optional<HeadEnd>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->length == b->length && a->terminator == b->terminator);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t piece = 1 + data[0] % 16;
  std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);

  // At once, and in pieces as read_some receives them (stopping at the first end found).
  std::optional<HeadEnd> whole = find_head_end(all);
  std::optional<HeadEnd> pieces;
  std::string received;
  for (std::size_t at = 0; at < all.size() && !pieces; at += piece) {
    std::size_t scan_from = received.size() >= 3 ? received.size() - 3 : 0;
    received.append(all.substr(at, piece));
    pieces = find_head_end(received, scan_from);
  }
  check(same(whole, pieces));
  if (!whole) return 0;
  check(whole->length + whole->terminator <= all.size());
  std::string_view blank = all.substr(whole->length, whole->terminator);
  check(blank == (whole->terminator == 4 ? "\r\n\r\n" : "\n\n"));
  // Nothing earlier ends a head.
  std::string_view head = all.substr(0, whole->length);
  check(head.find("\n\n") == std::string_view::npos);
  check((std::string(head) + "\r\n\r").find("\r\n\r\n") == std::string::npos);

  ParsedHead parsed = parse_request_head(head);
  if (parsed.refusal) {
    int status = parsed.refusal->status;
    check(status == 400 || status == 405 || status == 505);
    check(!parsed.refusal->body.empty());
    return 0;
  }
  const Request& r = parsed.request;
  check(r.method == "GET" || r.method == "HEAD");
  check(parsed.with_body == (r.method == "GET"));
  check(!r.path.empty() && r.path.front() == '/');
  check(r.path.find('?') == std::string::npos);
  // The request line is METHOD SP PATH ["?" QUERY] SP HTTP/1.x.
  std::string start = r.method + " " + r.path;
  check(head.starts_with(start));
  std::string_view rest = head.substr(start.size());
  check(rest.starts_with(" HTTP/1.") || rest.starts_with("?" + r.query + " HTTP/1."));
  return 0;
}
