// Redis URL parsing, password files and endpoint names (no password ever in a message).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/redis.hpp"
#include "test_support.hpp"

using pgbust::redis::Endpoint;
using pgbust::redis::parse_url;

namespace {
std::string error_of(const std::string& url) {
  try {
    parse_url(url);
  } catch (const pgbust::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("valid redis URLs") {
  struct Case {
    std::string url;
    bool unix_socket;
    std::string host_or_path;
    int port, db;
    std::string user, password, describe;
  };
  const Case cases[] = {
      {"redis://127.0.0.1:6379/0", false, "127.0.0.1", 6379, 0, "", "", "127.0.0.1:6379 db 0"},
      {"redis://localhost", false, "localhost", 6379, 0, "", "", "localhost:6379 db 0"},
      {"redis://localhost/", false, "localhost", 6379, 0, "", "", "localhost:6379 db 0"},
      {"REDIS://cache.internal:7000/15", false, "cache.internal", 7000, 15, "", "",
       "cache.internal:7000 db 15"},
      {"redis://:s3cret@10.0.0.1:6380/2", false, "10.0.0.1", 6380, 2, "", "s3cret",
       "10.0.0.1:6380 db 2"},
      {"redis://app:pw@h/1", false, "h", 6379, 1, "app", "pw", "h:6379 db 1"},
      {"redis://app:p%40ss%3Aw%2Frd@h", false, "h", 6379, 0, "app", "p@ss:w/rd", "h:6379 db 0"},
      {"redis://app:p@ss@h:1", false, "h", 1, 0, "app", "p@ss", "h:1 db 0"},
      {"redis://[::1]:6390/3", false, "::1", 6390, 3, "", "", "[::1]:6390 db 3"},
      {"redis://[::1]", false, "::1", 6379, 0, "", "", "[::1]:6379 db 0"},
      {"unix:///run/redis/redis.sock", true, "/run/redis/redis.sock", 6379, 0, "", "",
       "/run/redis/redis.sock db 0"},
      {"unix:///tmp/r.sock?db=4", true, "/tmp/r.sock", 6379, 4, "", "", "/tmp/r.sock db 4"},
      {"unix://:pw@/tmp/r.sock", true, "/tmp/r.sock", 6379, 0, "", "pw", "/tmp/r.sock db 0"},
      {"unix://u:pw@/tmp/r.sock?db=1", true, "/tmp/r.sock", 6379, 1, "u", "pw", "/tmp/r.sock db 1"},
      {"rediss://app:pw@cache.example.com:6380/1", false, "cache.example.com", 6380, 1, "app", "pw",
       "cache.example.com:6380 db 1 over TLS"},
      {"REDISS://[::1]", false, "::1", 6379, 0, "", "", "[::1]:6379 db 0 over TLS"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.url);
    Endpoint ep = parse_url(c.url);
    CHECK(ep.unix_socket == c.unix_socket);
    CHECK((c.unix_socket ? ep.path : ep.host) == c.host_or_path);
    if (!c.unix_socket) CHECK(ep.port == c.port);
    CHECK(ep.db == c.db);
    CHECK(ep.user == c.user);
    CHECK(ep.password == c.password);
    CHECK(ep.describe() == c.describe);
    CHECK(ep.tls == (c.url.starts_with("rediss") || c.url.starts_with("REDISS")));
  }
}

TEST_CASE("bad redis URLs say what was expected, and never show the password") {
  struct Case {
    std::string url, expected;
  };
  const Case cases[] = {
      {"rediss://:pw@host:6379/x", "database 'x' is not a number"},
      {"rediss://:pw@:6379", "missing host"},
      {"http://host",
       "expected redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or unix:///path"},
      {"", "expected redis://"},
      {"/tmp/redis.sock", "a bare path; write unix:///tmp/redis.sock"},
      {"redis://", "missing host"},
      {"redis://:pw@:6379", "missing host"},
      {"redis://h:", "empty port"},
      {"redis://h:0", "port '0' is not a number from 1 to 65535"},
      {"redis://h:65536", "port '65536'"},
      {"redis://h:63x", "port '63x'"},
      {"redis://h/x", "database 'x' is not a number"},
      {"redis://h/-1", "database '-1'"},
      {"redis://h/1/2", "database '1/2'"},
      {"redis://h?db=1", "unexpected query"},
      {"redis://[::1:6379", "missing ']'"},
      {"redis://[::1]x", "expected ':port' after ']'"},
      {"redis://:p%zzw@h", "bad %-escape in the password"},
      {"unix://relative.sock", "absolute socket path"},
      {"unix://", "absolute socket path"},
      {"unix:///", "empty socket path"},
      {"unix:///tmp/s?database=1", "unexpected query 'database=1' (expected ?db=N)"},
      {"unix:///tmp/s?db=", "is not a number (?db=N)"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.url);
    std::string err = error_of(c.url);
    CHECK(err.find(c.expected) != std::string::npos);
    CHECK(err.find("pw") == std::string::npos);
  }
}

TEST_CASE("a bare path's hint does not echo what the splitter reads as a password") {
  // Found by fuzz_redis_url (corpus: crash_bare_path_hint): the "write unix://..." hint
  // repeated the whole URL, password included, after the masked copy.
  std::string err = error_of("/run/redis:hunter2secret@/redis.sock");
  CHECK(err.find("a bare path") != std::string::npos);
  CHECK(err.find("hunter2secret") == std::string::npos);
}

TEST_CASE("password file: first line without its line ending; overrides the URL's password") {
  pgbust::test::TempDir dir;
  auto crlf = dir.write("crlf", "hunter2\r\nsecond line\n");
  auto bare = dir.write("bare", "p w d");
  auto empty = dir.write("empty", "\n");
  CHECK(pgbust::redis::read_password_file(crlf.string()) == "hunter2");
  CHECK(pgbust::redis::read_password_file(bare.string()) == "p w d");
  CHECK_THROWS_WITH_AS(pgbust::redis::read_password_file(empty.string()),
                       doctest::Contains("first line is empty"), pgbust::Error);
  CHECK_THROWS_WITH_AS(pgbust::redis::read_password_file((dir.path() / "missing").string()),
                       doctest::Contains("cannot read: No such file"), pgbust::Error);

  // A systemd credential: LoadCredential=redis-password:... and
  // password_file: "${CREDENTIALS_DIRECTORY}/redis-password".
  const char* before = std::getenv("CREDENTIALS_DIRECTORY");
  std::string saved = before ? before : "";
  ::unsetenv("CREDENTIALS_DIRECTORY");
  CHECK_THROWS_WITH_AS(pgbust::redis::read_password_file("${CREDENTIALS_DIRECTORY}/crlf"),
                       doctest::Contains("$CREDENTIALS_DIRECTORY is not set"), pgbust::Error);
  ::setenv("CREDENTIALS_DIRECTORY", dir.path().c_str(), 1);
  CHECK(pgbust::redis::read_password_file("${CREDENTIALS_DIRECTORY}/crlf") == "hunter2");
  CHECK(pgbust::redis::read_password_file("$CREDENTIALS_DIRECTORY/bare") == "p w d");
  CHECK(pgbust::redis::credentials_path("/etc/x/${CREDENTIALS_DIRECTORY}/y") ==
        "/etc/x/${CREDENTIALS_DIRECTORY}/y");
  if (before)
    ::setenv("CREDENTIALS_DIRECTORY", saved.c_str(), 1);
  else
    ::unsetenv("CREDENTIALS_DIRECTORY");

  pgbust::redis::Options o;
  o.url = "redis://app:fromurl@h:1/2";
  o.password_file = crlf.string();
  Endpoint ep = pgbust::redis::resolve_endpoint(o);
  CHECK(ep.user == "app");
  CHECK(ep.password == "hunter2");

  o.url = "redis://app@h";
  o.password_file.clear();
  CHECK_THROWS_WITH_AS(pgbust::redis::resolve_endpoint(o), doctest::Contains("has no password"),
                       pgbust::Error);
}

TEST_CASE("a Target never shows the password and rejects unusable options") {
  pgbust::redis::Options o;
  o.url = "redis://app:topsecret@127.0.0.1:1/3";
  pgbust::redis::Target t(o);
  CHECK(t.describe() == "127.0.0.1:1 db 3");
  CHECK(t.state() == pgbust::redis::State::Disconnected);
  CHECK(t.queued() == 0);

  o.max_in_flight = 0;
  CHECK_THROWS_WITH_AS(pgbust::redis::Target{o}, doctest::Contains("max_in_flight"), pgbust::Error);
  o.max_in_flight = 1;
  o.backoff_max = std::chrono::milliseconds(1);
  CHECK_THROWS_WITH_AS(pgbust::redis::Target{o}, doctest::Contains("backoff_min <= backoff_max"),
                       pgbust::Error);
}

TEST_CASE("a password holding '@' is masked exactly where it is read (no tail in a message)") {
  // The parser splits the userinfo at the last '@' (redis://) and masking used the first, so
  // "tail" (the password's end) was printed.
  for (std::string url :
       {"redis://:pw@tail@host/x", "redis://app:pw@tail@host:0", "redis://pw@tail@host/x",
        "unix://:pw@tail@relative.sock", "unix://u:pw@tail@/tmp/s?db=x",
        "rediss://:pw@tail@host:99999", "http://:pw@tail@host"}) {
    CAPTURE(url);
    std::string err = error_of(url);
    CHECK(!err.empty());
    CHECK(err.find("tail") == std::string::npos);
    CHECK(err.find("pw") == std::string::npos);
  }
  Endpoint ep = parse_url("unix://u:pw@tail@/run/redis@main/redis.sock?db=2");
  CHECK(ep.user == "u");
  CHECK(ep.password == "pw@tail");
  CHECK(ep.path == "/run/redis@main/redis.sock");
  CHECK(ep.db == 2);
  CHECK(parse_url("unix:///run/redis@main/redis.sock").path == "/run/redis@main/redis.sock");
  CHECK(pgbust::redis::mask_url("redis://app:p@ss@h:1/0") == "redis://app:********@h:1/0");
  CHECK(pgbust::redis::mask_url("redis://p@ss@h") == "redis://********@h");
  CHECK(pgbust::redis::mask_url("unix://:p@ss@/s") == "unix://:********@/s");
}

TEST_CASE("resolve_endpoint refuses what a Target refuses (check --config calls it)") {
  pgbust::redis::Options o;
  o.url = "redis://127.0.0.1:1/0";
  o.command_timeout = std::chrono::milliseconds(0);
  CHECK_THROWS_WITH_AS(pgbust::redis::resolve_endpoint(o), doctest::Contains("must be positive"),
                       pgbust::Error);
  o.command_timeout = std::chrono::milliseconds(1);
  o.password_file = "/nonexistent/pgbust-redis-password";
  CHECK_THROWS_WITH_AS(pgbust::redis::resolve_endpoint(o), doctest::Contains("cannot read"),
                       pgbust::Error);
}
