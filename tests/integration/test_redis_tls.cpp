// The Redis target over TLS against a real redis-server with --tls-port and certificates
// made by the openssl tool: verified invalidations, each bad certificate refused with its own
// error, mutual TLS, the wrong protocol on either side, and a reconnect after a restart.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <string>

#include "harness.hpp"
#include "pgbust/core/error.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/redis/redis.hpp"
#include "target_rig.hpp"

using namespace std::chrono_literals;
using pgbust::redis::Batch;
using pgbust::redis::Options;
using pgbust::redis::State;
using pgbust::redis::Target;
using pgbust::test::Redis;
using pgbust::test::RedisOptions;
using pgbust::test::TlsCerts;

namespace {

const TlsCerts& certs() {
  static const TlsCerts c;  // made once per test binary (a few RSA keys)
  return c;
}

RedisOptions tls_server(const std::string& cert = "server", bool auth_clients = false) {
  return {certs().file(cert + ".crt"), certs().file(cert + ".key"), certs().file("ca.crt"),
          auth_clients};
}

Options fast(const std::string& url) {
  Options o;
  o.url = url;
  o.connect_timeout = 1000ms;
  o.command_timeout = 1000ms;
  o.backoff_min = 20ms;
  o.backoff_max = 200ms;
  o.log_interval = 1s;
  o.tls.configured = url.starts_with("rediss://");
  o.tls.ca_file = certs().file("ca.crt");
  return o;
}

struct Rig : pgbust::test::TargetRig {
  using TargetRig::TargetRig;
  // Runs until the target has failed twice; its last error.
  std::string failure() {
    bool done = false;
    Batch b;
    b.deletes = {"k"};
    target.apply(std::move(b), [&] { done = true; });
    REQUIRE(run_until([&] { return target.stats().errors >= 2; }));
    CHECK_FALSE(done);
    CHECK(target.state() != State::Ready);
    return target.last_error();
  }
};

void fill(Redis& redis, const std::string& prefix, int n) {
  redis.command({"EVAL",
                 "for i = 0, tonumber(ARGV[2]) - 1 do redis.call('SET', ARGV[1] .. i, 'v') end",
                 "0", prefix, std::to_string(n)});
}

}  // namespace

TEST_CASE("TLS with verify: full: deletes, patterns and bumps reach Redis") {
  Redis redis(tls_server());
  CHECK(redis.url().starts_with("rediss://127.0.0.1:"));
  fill(redis, "k:", 5000);
  fill(redis, "p:", 3000);
  Options o = fast(redis.url());
  SUBCASE("by address (IP SAN)") {}
  SUBCASE("by host name (DNS SAN, SNI)") {
    o.url = "rediss://localhost:" + std::to_string(redis.port()) + "/0";
  }
  Rig rig(o);
  REQUIRE(rig.run_until([&] { return rig.target.connected(); }));
  CHECK(rig.target.describe().ends_with("db 0 over TLS"));
  CHECK(rig.target.tls_version().starts_with("TLSv1."));  // for the status line and metrics
  CHECK(rig.target.role() == "master");
  Batch b;
  // Big enough that writes are partial and replies span many TLS records.
  for (int i = 0; i < 5000; ++i)
    b.deletes.push_back("k:" + std::to_string(i) + std::string(40, 'x'));
  for (int i = 0; i < 5000; ++i) b.deletes.push_back("k:" + std::to_string(i));
  b.patterns = {"p:*"};
  b.bumps = {"rev:a", "rev:b"};
  b.streams = {{"inval:s", "{\"keys\":[]}"}};
  REQUIRE(rig.apply(std::move(b)));
  CHECK(redis.command({"XLEN", "inval:s"}) == std::optional<std::string>("1"));
  CHECK(rig.target.stats().stream_entries == 1);
  CHECK(redis.keys("k:*").empty());
  CHECK(redis.keys("p:*").empty());
  CHECK(redis.exists("rev:a"));
  CHECK(rig.target.stats().keys_deleted == 8000);
  CHECK(rig.target.stats().errors == 0);
}

TEST_CASE("TLS: each bad server certificate is refused with its own error") {
  struct Case {
    std::string cert, expected;
  };
  const Case cases[] = {
      {"expired", "TLS handshake failed: the server's certificate has expired"},
      {"wronghost",
       "TLS handshake failed: host name mismatch: the server's certificate is not for "
       "'127.0.0.1'"},
      {"untrusted", "TLS handshake failed: untrusted server certificate: "},
  };
  for (const Case& c : cases) {
    CAPTURE(c.cert);
    Redis redis(tls_server(c.cert));
    Rig rig(fast(redis.url()));
    std::string error = rig.failure();
    CHECK_MESSAGE(error.find(c.expected) != std::string::npos, error);
    CHECK(error.find('\n') == std::string::npos);
  }
}

TEST_CASE("TLS: server_name and verify: ca accept a certificate for another name") {
  Redis redis(tls_server("wronghost"));
  redis.set("k", "1");
  Options o = fast(redis.url());
  SUBCASE("server_name") {
    o.tls.server_name = "cache.example.com";
  }
  SUBCASE("verify: ca (chain only)") {
    o.tls.verify = "ca";
  }
  Rig rig(o);
  Batch b;
  b.deletes = {"k"};
  REQUIRE(rig.apply(std::move(b)));
  CHECK_FALSE(redis.exists("k"));
}

TEST_CASE("TLS: the system store does not trust the test CA; verify: none still encrypts") {
  Redis redis(tls_server());
  Options o = fast(redis.url());
  o.tls.ca_file.clear();
  SUBCASE("system CA store") {
    Rig rig(o);
    std::string error = rig.failure();
    CHECK_MESSAGE(error.find("untrusted server certificate") != std::string::npos, error);
  }
  SUBCASE("verify: none") {
    o.tls.verify = "none";
    redis.set("k", "1");
    Rig rig(o);
    Batch b;
    b.deletes = {"k"};
    REQUIRE(rig.apply(std::move(b)));
    CHECK_FALSE(redis.exists("k"));
  }
}

TEST_CASE("mutual TLS: a client certificate is required and used") {
  Redis redis(tls_server("server", true));
  redis.set("k", "1");
  Options o = fast(redis.url());
  SUBCASE("without one: refused, and the error says so") {
    Rig rig(o);
    std::string error = rig.failure();
    CHECK_MESSAGE(error.find("client certificate") != std::string::npos, error);
  }
  SUBCASE("with one") {
    o.tls.cert_file = certs().file("client.crt");
    o.tls.key_file = certs().file("client.key");
    Rig rig(o);
    Batch b;
    b.deletes = {"k"};
    REQUIRE(rig.apply(std::move(b)));
    CHECK_FALSE(redis.exists("k"));
  }
  SUBCASE("a key that does not match the certificate: refused at start") {
    o.tls.cert_file = certs().file("client.crt");
    o.tls.key_file = certs().file("server.key");
    CHECK_THROWS_WITH_AS(Target{o}, doctest::Contains("does not match cert_file"), pgbust::Error);
  }
}

TEST_CASE("wrong protocol on the port, either way, is named") {
  SUBCASE("plain client, TLS port") {
    Redis redis(tls_server());
    Options o = fast("redis://127.0.0.1:" + std::to_string(redis.port()) + "/0");
    Rig rig(o);
    std::string error = rig.failure();
    CHECK_MESSAGE(error.find("use rediss://") != std::string::npos, error);
  }
  SUBCASE("TLS client, plain port") {
    Redis redis;
    Options o = fast("rediss://127.0.0.1:" + std::to_string(redis.port()) + "/0");
    Rig rig(o);
    std::string error = rig.failure();
    CHECK_MESSAGE(error.find("wrong protocol on the port") != std::string::npos, error);
  }
  SUBCASE("redis.tls with a redis:// URL is a configuration error") {
    Options o = fast("redis://127.0.0.1:1/0");
    o.tls.configured = true;
    CHECK_THROWS_WITH_AS(Target{o},
                         doctest::Contains("redis.tls is set but the URL is not rediss://"),
                         pgbust::Error);
  }
}

TEST_CASE("TLS: Redis restarted: a fresh session, the queued batch applied after") {
  Redis redis(tls_server());
  Rig rig(fast(redis.url()));
  REQUIRE(rig.run_until([&] { return rig.target.connected(); }));
  redis.stop();
  bool done = false;
  Batch b;
  b.deletes = {"k:1", "k:2"};
  b.bumps = {"rev"};
  rig.target.apply(std::move(b), [&] { done = true; });
  REQUIRE(rig.run_until([&] { return rig.target.stats().errors >= 2; }));
  CHECK_FALSE(done);
  redis.start();
  fill(redis, "k:", 5);
  REQUIRE(rig.run_until([&] { return done; }));
  CHECK(redis.keys("k:*") == std::vector<std::string>{"k:0", "k:3", "k:4"});
  CHECK(redis.exists("rev"));
  CHECK(rig.target.stats().reconnects >= 1);
}
