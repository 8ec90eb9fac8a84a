// `pgbust run` exit codes as systemd sees them: a bad config or bad rules exit 78 (EX_CONFIG,
// which the unit's RestartPreventExitStatus= keeps from restarting), runtime failures 1.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

// Nothing listens on port 1 of loopback: the daemon never gets as far as connecting in these
// tests, and would fail quickly if it did.
std::string config(const std::string& extra_redis = "", const std::string& listen = "") {
  return "postgres: {conninfo: \"host=127.0.0.1 port=1 dbname=app\"}\n"
         "sources:\n"
         "  logical: {slot: exit_codes, publication: exit_codes}\n"
         "redis: {url: \"redis://127.0.0.1:1/0\"" +
         extra_redis +
         "}\n"
         "rules: rules.yaml\n"
         "status: {interval: 1s, listen: \"" +
         listen + "\"}\n";
}

const std::string kRules =
    "version: 1\n"
    "rules:\n"
    "  - name: one\n"
    "    table: public.t\n"
    "    delete: [\"t:${id}\"]\n";

RunResult run_daemon(const TempDir& dir) {
  return run({pgbust_binary(), "run", "--config", (dir.path() / "pgbust.yaml").string()});
}

}  // namespace

TEST_CASE("run: an invalid config file exits 78 and names the position") {
  TempDir dir;
  dir.write("rules.yaml", kRules);
  dir.write("pgbust.yaml", config() + "no_such_key: 1\n");
  auto r = run_daemon(dir);
  INFO(r.output);
  CHECK(r.exit_code == 78);
  CHECK(r.output.find("pgbust.yaml:7:1") != std::string::npos);
}

TEST_CASE("run: a missing config file exits 78") {
  TempDir dir;
  auto r = run({pgbust_binary(), "run", "--config", (dir.path() / "absent.yaml").string()});
  INFO(r.output);
  CHECK(r.exit_code == 78);
}

TEST_CASE("run: invalid rules exit 78 and name the position") {
  TempDir dir;
  dir.write("rules.yaml", kRules + "    no_such_field: 1\n");
  dir.write("pgbust.yaml", config());
  auto r = run_daemon(dir);
  INFO(r.output);
  CHECK(r.exit_code == 78);
  CHECK(r.output.find("rules.yaml:6:5") != std::string::npos);
}

TEST_CASE("run: options a component refuses before connecting exit 78") {
  TempDir dir;
  dir.write("rules.yaml", kRules);
  SUBCASE("a Redis URL that does not parse") {
    dir.write("pgbust.yaml", config());
    auto r = run({pgbust_binary(), "run", "--config", (dir.path() / "pgbust.yaml").string(),
                  "--redis-url", "nosuchscheme://x"});
    INFO(r.output);
    CHECK(r.exit_code == 78);
    CHECK(r.output.find("redis URL") != std::string::npos);
  }
  SUBCASE("an invalid slot name") {
    dir.write("pgbust.yaml", config());
    auto r = run({pgbust_binary(), "run", "--config", (dir.path() / "pgbust.yaml").string(),
                  "--slot", "Not-A-Slot"});
    INFO(r.output);
    CHECK(r.exit_code == 78);
    CHECK(r.output.find("invalid slot name") != std::string::npos);
  }
  // No retry can fix these; the daemon used to retry them for ever. The message says where
  // libpq stopped, never the text (a password in it, here mistyped, stays out).
  for (const char* conninfo :
       {"host=127.0.0.1 PASSWORD=sekrit-marker", "host='127.0.0.1", "postgresql://u@[::1/db"}) {
    SUBCASE(conninfo) {
      dir.write("pgbust.yaml", config());
      auto r = run({pgbust_binary(), "run", "--config", (dir.path() / "pgbust.yaml").string(),
                    "--postgres", conninfo});
      INFO(r.output);
      CHECK(r.exit_code == 78);
      CHECK(r.output.find("--postgres: conninfo not understood by libpq") != std::string::npos);
      CHECK(r.output.find("sekrit") == std::string::npos);
      CHECK(r.output.find("127.0.0.1") == std::string::npos);

      // check --config refuses it as run does.
      std::string yaml = config();
      yaml.replace(yaml.find("host=127.0.0.1 port=1 dbname=app"),
                   std::string_view("host=127.0.0.1 port=1 dbname=app").size(), conninfo);
      dir.write("pgbust.yaml", yaml);
      auto c = run({pgbust_binary(), "check", "--config", (dir.path() / "pgbust.yaml").string()});
      INFO(c.output);
      CHECK(c.exit_code == 1);
      CHECK(c.output.find("pgbust.yaml: postgres.conninfo: conninfo not understood by libpq") !=
            std::string::npos);
      CHECK(c.output.find("sekrit") == std::string::npos);
    }
  }
}

TEST_CASE("run: a runtime failure (metrics port taken) exits 1, not 78") {
  // Hold a loopback port so the daemon's listener cannot bind it.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  std::string listen = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  TempDir dir;
  dir.write("rules.yaml", kRules);
  dir.write("pgbust.yaml", config("", listen));
  auto r = run_daemon(dir);
  ::close(fd);
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find(listen) != std::string::npos);
}
