// ACL users: a user allowed exactly what pgbust sends works; one lacking UNLINK gets an
// error that names the command and the grant, from `check --redis` and from the target that
// `run` uses; a wrong password is an authentication problem, not an outage.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <string>

#include "harness.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/redis/redis.hpp"
#include "target_rig.hpp"

using namespace std::chrono_literals;
using pgbust::redis::Batch;
using pgbust::redis::Options;
using pgbust::redis::Target;
using pgbust::test::Redis;
using pgbust::test::TempDir;

namespace {

// Exactly the commands pgbust sends (CLIENT SETNAME is optional; SELECT for db != 0).
const std::vector<std::string> kNeeded{"+unlink",  "+scan", "+set",           "+incr",
                                       "+publish", "+ping", "+client|setname"};

void make_user(Redis& redis, const std::string& name, const std::vector<std::string>& extra) {
  std::vector<std::string> argv{"ACL", "SETUSER", name, "reset", "on", ">pw-" + name, "~*", "&*"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  redis.command(argv);
}

std::string config(const TempDir& dir, const Redis& redis, const std::string& user) {
  dir.write("rules.yaml",
            "version: 1\nrules:\n  - name: users\n    table: users\n    delete: [\"user:${id}\"]\n"
            "    bump: [\"rev:users\"]\n    publish: inval\n");
  return dir
      .write("pgbust.yaml", "rules: rules.yaml\nredis:\n  url: redis://" + user + ":pw-" + user +
                                "@127.0.0.1:" + std::to_string(redis.port()) + "/0\n")
      .string();
}

using Rig = pgbust::test::TargetRig;

Options fast(const std::string& url) {
  Options o;
  o.url = url;
  o.connect_timeout = 500ms;
  o.command_timeout = 500ms;
  o.backoff_min = 20ms;
  o.backoff_max = 200ms;
  return o;
}

}  // namespace

TEST_CASE("check --redis: a user with exactly the needed commands passes") {
  Redis redis;
  TempDir dir;
  make_user(redis, "app", kNeeded);
  auto r = pgbust::test::run(
      {pgbust::test::pgbust_binary(), "check", "--config", config(dir, redis, "app"), "--redis"});
  CHECK_MESSAGE(r.exit_code == 0, r.output);
  CHECK(r.output.find("as user 'app' may run SET, INCR, SCAN, PING, UNLINK, PUBLISH to inval") !=
        std::string::npos);
  CHECK(r.output.find("pw-app") == std::string::npos);
  CHECK(redis.keys().empty());  // the probes leave nothing behind

  // The same user runs a batch through the target.
  redis.set("user:1", "x");
  Rig rig(fast("redis://app:pw-app@127.0.0.1:" + std::to_string(redis.port()) + "/0"));
  bool done = false;
  Batch b;
  b.deletes = {"user:1"};
  b.bumps = {"rev:users"};
  b.publishes = {{"inval", "{}"}};
  rig.target.apply(std::move(b), [&] { done = true; });
  REQUIRE(rig.run_until([&] { return done; }));
  CHECK_FALSE(redis.exists("user:1"));
}

// Regression: a refused CLIENT SETNAME (documented as optional) failed the handshake, so a
// user without it could never connect. ROLE (for the status line) is optional the same way.
TEST_CASE("a user without CLIENT SETNAME or ROLE still applies batches; ROLE shows the role") {
  Redis redis;
  std::vector<std::string> without_setname(kNeeded.begin(), kNeeded.end() - 1);
  make_user(redis, "app", without_setname);
  make_user(redis, "roles", {"+unlink", "+ping", "+client|setname", "+role"});
  for (const std::string user : {"app", "roles"}) {
    CAPTURE(user);
    redis.set("user:1", "x");
    Rig rig(fast("redis://" + user + ":pw-" + user + "@127.0.0.1:" + std::to_string(redis.port()) +
                 "/0"));
    bool done = false;
    Batch b;
    b.deletes = {"user:1"};
    rig.target.apply(std::move(b), [&] { done = true; });
    REQUIRE_MESSAGE(rig.run_until([&] { return done; }), rig.target.last_error());
    CHECK_FALSE(redis.exists("user:1"));
    CHECK(rig.target.role() == (user == "roles" ? "master" : ""));
    CHECK(rig.target.tls_version().empty());
  }
}

TEST_CASE("a user lacking UNLINK: check --redis and the target name it and the grant") {
  Redis redis;
  TempDir dir;
  std::vector<std::string> without(kNeeded.begin() + 1, kNeeded.end());
  SUBCASE("Redis 7 with ACL DRYRUN allowed to the user") {
    without.push_back("+acl|dryrun");
  }
  SUBCASE("probes (DRYRUN not allowed)") {}
  make_user(redis, "app", without);
  auto r = pgbust::test::run(
      {pgbust::test::pgbust_binary(), "check", "--config", config(dir, redis, "app"), "--redis"});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.output.find("user 'app' may not run UNLINK") != std::string::npos, r.output);
  CHECK(r.output.find("grant what is missing with: ACL SETUSER app +unlink\n") !=
        std::string::npos);
  CHECK(r.output.find("pw-app") == std::string::npos);

  redis.set("user:1", "x");
  Rig rig(fast("redis://app:pw-app@127.0.0.1:" + std::to_string(redis.port()) + "/0"));
  Batch b;
  b.deletes = {"user:1"};
  rig.target.apply(std::move(b), [] {});
  REQUIRE(rig.run_until([&] { return rig.target.stats().errors >= 1; }));
  std::string err = rig.target.last_error();
  CHECK_MESSAGE(err.find("UNLINK of 1 keys failed: NOPERM") != std::string::npos, err);
  CHECK(err.find("a permission problem: Redis user 'app' may not run UNLINK; grant it: ACL "
                 "SETUSER app +unlink") != std::string::npos);
}

TEST_CASE("a wrong password is an authentication problem, from check --redis and the target") {
  Redis redis;
  TempDir dir;
  make_user(redis, "app", kNeeded);
  redis.command({"ACL", "SETUSER", "app", "resetpass", ">other"});
  auto r = pgbust::test::run(
      {pgbust::test::pgbust_binary(), "check", "--config", config(dir, redis, "app"), "--redis"});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.output.find("AUTH failed: WRONGPASS") != std::string::npos, r.output);
  CHECK(r.output.find("an authentication problem: check the password of Redis user 'app'") !=
        std::string::npos);
  CHECK(r.output.find("pw-app") == std::string::npos);
}

TEST_CASE("check --config validates the Redis URL and TLS files exactly as run does") {
  Redis redis;
  TempDir dir;
  std::string cfg = config(dir, redis, "app");
  dir.write("pgbust.yaml", "rules: rules.yaml\nredis: {url: \"redis://:secret@h:99999/0\"}\n");
  auto r = pgbust::test::run({pgbust::test::pgbust_binary(), "check", "--config", cfg});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.output.find("port '99999' is not a number from 1 to 65535") != std::string::npos,
                r.output);
  CHECK(r.output.find("secret") == std::string::npos);
  dir.write(
      "pgbust.yaml",
      "rules: rules.yaml\nredis: {url: \"rediss://h:6380/0\", tls: {ca_file: /nonexistent.pem}}\n");
  r = pgbust::test::run({pgbust::test::pgbust_binary(), "check", "--config", cfg});
  CHECK(r.exit_code == 1);
  CHECK_MESSAGE(r.output.find("cannot load CA certificates from ca_file '/nonexistent.pem'") !=
                    std::string::npos,
                r.output);
}
