// Redis endpoints: parsing redis:// and unix:// URLs, password files, and naming the server.
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/redis.hpp"

namespace pgbust::redis {

namespace {

constexpr std::string_view kExpected =
    "expected redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or "
    "unix:///path/to/socket[?db=N]";

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

}  // namespace

UrlParts split_url(std::string_view url) {
  UrlParts p;
  if (starts_with_nocase(url, "redis://")) {
    p.scheme = UrlParts::Tcp;
  } else if (starts_with_nocase(url, "rediss://")) {
    p.scheme = UrlParts::Tls;
  } else if (starts_with_nocase(url, "unix://")) {
    p.scheme = UrlParts::Unix;
  }
  auto sep = url.find("://");
  p.prefix = url.substr(0, sep == std::string_view::npos ? 0 : sep + 3);
  p.rest = url.substr(p.prefix.size());
  std::size_t at = std::string_view::npos;
  if (p.scheme != UrlParts::Unix) {
    at = p.rest.rfind('@');  // the password may hold '@'; a host never does
  } else if (!p.rest.starts_with('/')) {
    // unix://[user:password@]/path: the first "@/" ends the userinfo (a socket path may
    // hold '@', as in /run/redis@main/redis.sock, and so may the password).
    at = p.rest.find("@/");
    if (at == std::string_view::npos) at = p.rest.rfind('@');
  }
  if (at != std::string_view::npos) {
    p.userinfo = p.rest.substr(0, at);
    p.rest.remove_prefix(at + 1);
  }
  return p;
}

std::string mask_url(std::string_view url) {
  UrlParts p = split_url(url);
  std::string out(p.prefix);
  if (p.userinfo) {
    auto colon = p.userinfo->find(':');
    // Without a ':' the userinfo is a user name, but often a password written without one.
    if (colon != std::string_view::npos) out.append(p.userinfo->substr(0, colon)).append(":");
    out += "********@";
  }
  out += p.rest;
  return out;
}

namespace {

[[noreturn]] void bad(std::string_view url, std::string_view what) {
  throw Error("redis URL '" + mask_url(url) + "': " + std::string(what));
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view url, std::string_view s, std::string_view part) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
    if (hi < 0 || lo < 0)
      bad(url, "bad %-escape in the " + std::string(part) + " (expected %XX, two hex digits)");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// Decimal digits only, within [lo, hi].
bool parse_int(std::string_view s, long lo, long hi, int& out) {
  if (s.empty() || s.size() > 10) return false;
  long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return false;
  out = static_cast<int>(v);
  return true;
}

constexpr long kMaxDb = 1'000'000;  // Redis's `databases` setting; SELECT says if out of range

void parse_userinfo(std::string_view url, std::optional<std::string_view> userinfo, Endpoint& ep) {
  if (!userinfo) return;
  std::string_view info = *userinfo;
  auto colon = info.find(':');
  if (colon == std::string_view::npos) {
    ep.user = percent_decode(url, info, "user name");
    return;
  }
  ep.user = percent_decode(url, info.substr(0, colon), "user name");
  ep.password = percent_decode(url, info.substr(colon + 1), "password");
}

Endpoint parse_tcp(std::string_view url, const UrlParts& parts) {
  Endpoint ep;
  if (url.find('?') != std::string_view::npos)
    bad(url, "unexpected query ('?...') in a redis:// URL; " + std::string(kExpected));
  parse_userinfo(url, parts.userinfo, ep);
  std::string_view rest = parts.rest;
  std::string_view hostport = rest.substr(0, rest.find('/'));
  std::string_view path = rest.substr(hostport.size());
  std::string_view port;
  if (hostport.starts_with('[')) {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) bad(url, "missing ']' after an IPv6 address");
    ep.host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') bad(url, "expected ':port' after ']'");
      port = after.substr(1);
      if (port.empty()) bad(url, "empty port after ':'");
    }
  } else {
    auto colon = hostport.find(':');
    ep.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      if (port.empty()) bad(url, "empty port after ':'");
    }
  }
  if (ep.host.empty()) bad(url, "missing host; " + std::string(kExpected));
  if (!port.empty() && !parse_int(port, 1, 65535, ep.port))
    bad(url, "port '" + std::string(port) + "' is not a number from 1 to 65535");
  if (path.size() > 1 && !parse_int(path.substr(1), 0, kMaxDb, ep.db))
    bad(url,
        "database '" + std::string(path.substr(1)) + "' is not a number (expected /<db>, e.g. /0)");
  return ep;
}

Endpoint parse_unix(std::string_view url, const UrlParts& parts) {
  Endpoint ep;
  ep.unix_socket = true;
  parse_userinfo(url, parts.userinfo, ep);
  std::string_view rest = parts.rest;
  if (!rest.starts_with('/'))
    bad(url, "expected an absolute socket path after unix:// (unix:///path/to/socket)");
  auto q = rest.find('?');
  ep.path = std::string(rest.substr(0, q));
  if (ep.path.size() < 2) bad(url, "empty socket path; " + std::string(kExpected));
  if (q != std::string_view::npos) {
    std::string_view query = rest.substr(q + 1);
    if (!query.starts_with("db="))
      bad(url, "unexpected query '" + std::string(query) + "' (expected ?db=N)");
    if (!parse_int(query.substr(3), 0, kMaxDb, ep.db))
      bad(url, "database '" + std::string(query.substr(3)) + "' is not a number (?db=N)");
  }
  return ep;
}

}  // namespace

std::string Endpoint::describe() const {
  std::string s;
  if (unix_socket) {
    s = path;
  } else if (host.find(':') != std::string::npos) {
    s = "[" + host + "]:" + std::to_string(port);
  } else {
    s = host + ":" + std::to_string(port);
  }
  return s + " db " + std::to_string(db) + (tls ? " over TLS" : "");
}

Endpoint parse_url(std::string_view url) {
  UrlParts parts = split_url(url);
  if (parts.scheme == UrlParts::Tls) {
    Endpoint ep = parse_tcp(url, parts);
    ep.tls = true;
    return ep;
  }
  if (parts.scheme == UrlParts::Tcp) return parse_tcp(url, parts);
  if (parts.scheme == UrlParts::Unix) return parse_unix(url, parts);
  if (url.find("://") == std::string_view::npos && !url.empty() && url[0] == '/')
    bad(url, "a bare path; write unix://" + mask_url(url));
  bad(url, kExpected);
}

std::string credentials_path(const std::string& path) {
  for (std::string_view var : {"${CREDENTIALS_DIRECTORY}/", "$CREDENTIALS_DIRECTORY/"}) {
    if (path.compare(0, var.size(), var) != 0) continue;
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr || *dir == '\0')
      throw Error("redis password_file '" + path +
                  "': $CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit with "
                  "LoadCredential=; outside the unit, name the file itself)");
    return std::string(dir) + "/" + path.substr(var.size());
  }
  return path;
}

std::string read_password_file(const std::string& configured) {
  std::string path = credentials_path(configured);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    throw Error("redis password_file '" + path + "': cannot read: " + std::strerror(err));
  }
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) throw Error("redis password_file '" + path + "': first line is empty");
  return line;
}

PasswordFile::Outcome PasswordFile::refresh(const Options& options, Endpoint& ep) {
  if (options.password_file.empty()) return Outcome::None;
  try {
    std::string password = read_password_file(options.password_file);
    error_.clear();
    if (password == ep.password) return Outcome::Unchanged;
    ep.password = std::move(password);
    return Outcome::Changed;
  } catch (const Error& e) {
    error_ = e.what();
    return Outcome::Failed;
  }
}

Endpoint resolve_endpoint(const Options& options) {
  Endpoint ep = parse_url(options.url);
  if (!options.password_file.empty()) ep.password = read_password_file(options.password_file);
  if (options.tls.configured && !ep.tls)
    throw Error("redis URL '" + mask_url(options.url) +
                "': redis.tls is set but the URL is not rediss:// (write rediss://host:port/db "
                "for TLS)");
  if (!ep.user.empty() && ep.password.empty())
    throw Error("redis URL '" + mask_url(options.url) + "': user '" + ep.user +
                "' has no password (give redis://user:password@... or a password_file)");
  auto fail_opt = [&](const std::string& what) {
    throw Error("redis " + ep.describe() + ": " + what);
  };
  if (options.max_in_flight == 0) fail_opt("max_in_flight must be at least 1");
  if (options.unlink_chunk == 0) fail_opt("unlink_chunk must be at least 1");
  if (options.scan_count == 0) fail_opt("scan_count must be at least 1");
  if (options.connect_timeout.count() <= 0 || options.command_timeout.count() <= 0)
    fail_opt("connect_timeout and command_timeout must be positive");
  if (options.backoff_min.count() <= 0 || options.backoff_max < options.backoff_min)
    fail_opt("expected 0 < backoff_min <= backoff_max");
  return ep;
}

}  // namespace pgbust::redis
