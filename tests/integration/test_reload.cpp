// SIGHUP reloads the rules off the event loop: while a big rules file loads, /healthz keeps
// answering; the new rules then apply, a SIGHUP during the load is served after it, and the
// reload metrics count each reload.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "e2e.hpp"

using namespace pgbust::test;
using Clock = std::chrono::steady_clock;

namespace {

// `n` rules on items, each with a condition (rule big-N fires for v = N), two key templates
// and a counter (about 160 bytes of YAML a rule); E2E::write_rules appends the sentinel rule.
std::string big_rules(int n) {
  std::string out = "version: 1\nrules:\n";
  for (int i = 0; i < n; ++i) {
    std::string s = std::to_string(i);
    out += "  - name: big-" + s + "\n    table: items\n    on: [insert, update]\n" +
           "    when: \"new.v = " + s + "\"\n    delete: [\"big" + s +
           ":${id}\", \"other:${v}\"]\n    bump: [\"rev:${v}\"]\n";
  }
  return out;
}

// One GET /healthz on a fresh connection; its status line, or "" when there is no answer
// within `timeout`.
std::string probe(const std::string& addr, std::chrono::milliseconds timeout) {
  auto colon = addr.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(addr.substr(colon + 1))));
  ::inet_pton(AF_INET, addr.substr(0, colon).c_str(), &a.sin_addr);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET /healthz HTTP/1.0\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      auto until = Clock::now() + timeout;
      char buf[4096];
      while (got.find("\r\n") == std::string::npos && Clock::now() < until) {
        pollfd p{fd, POLLIN, 0};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        if (::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 1))) != 1) break;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        got.append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  ::close(fd);
  return got.substr(0, got.find("\r\n"));
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("a big rules file reloads off the loop: /healthz answers during the reload") {
  E2E e;
  INFO(e.logs());
  e.listen = "127.0.0.1:0";
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY, v int)");
  e.start("version: 1\nrules:\n  - name: items-a\n    table: items\n    delete: [\"a:${id}\"]\n",
          "items");
  std::string addr = metrics_address(e);
  REQUIRE(probe(addr, 5s) == "HTTP/1.1 200 OK");

  // As many rules as the size cap allows, near enough: loading them takes a while anywhere.
  e.write_rules(big_rules(11000));
  const std::string started = "SIGHUP: reloading", finished = "rules reloaded";
  e.daemon->signal(SIGHUP);
  REQUIRE(e.daemon->wait_for_output(started));

  // Probe until the reload is over. A probe counts as answered during the reload when the
  // log shows the reload begun and not finished both before it was sent and after its answer.
  int during = 0, probes = 0;
  bool again_sent = false;
  auto give_up = Clock::now() + 120s;
  while (count(e.daemon->output(), finished) == 0 && Clock::now() < give_up) {
    bool before = count(e.daemon->output(), finished) == 0;
    std::string status = probe(addr, 5s);
    ++probes;
    CHECK_MESSAGE(status == "HTTP/1.1 200 OK", "probe " << probes << " got '" << status << "'");
    bool after = count(e.daemon->output(), finished) == 0;
    if (status == "HTTP/1.1 200 OK" && before && after) {
      ++during;
      if (!again_sent) {  // a SIGHUP meanwhile is served after this load, not lost
        e.daemon->signal(SIGHUP);
        again_sent = true;
      }
    }
    std::this_thread::sleep_for(10ms);  // pacing the probes, not waiting for anything
  }
  CHECK_MESSAGE(during >= 1, probes << " probe(s), none answered while the rules were loading");
  REQUIRE(again_sent);
  CHECK(e.daemon->wait_for_output("reloading again once they are in"));
  CHECK(eventually([&] { return count(e.daemon->output(), finished) == 2; }, 120s));
  CHECK(count(e.daemon->output(), started) == 2);

  // The new rules apply; each reload is counted.
  e.set_keys({"a:1", "big7:1", "big8:1", "big10999:2"});
  e.pg.exec("INSERT INTO items VALUES (1, 7), (2, 10999)");
  e.sync();
  CHECK(e.redis.exists("a:1"));
  CHECK_FALSE(e.redis.exists("big7:1"));
  CHECK(e.redis.exists("big8:1"));
  CHECK_FALSE(e.redis.exists("big10999:2"));
  CHECK(metric(addr, "pgbust_reloads_total{result=\"ok\"}") == 2);
  CHECK(metric(addr, "pgbust_config_last_reload_successful") == 1);

  // A broken file loaded off the loop too: reported, and the running rules stay.
  e.write_rules(
      "version: 1\nrules:\n  - name: broken\n    table: items\n    delete: [\"x:${id\"]\n");
  e.daemon->signal(SIGHUP);
  CHECK(e.daemon->wait_for_output("reload failed"));
  e.set_keys({"big8:3"});
  e.pg.exec("INSERT INTO items VALUES (3, 8)");
  e.sync();
  CHECK_FALSE(e.redis.exists("big8:3"));
  CHECK(metric(addr, "pgbust_reloads_total{result=\"failed\"}") == 1);
  CHECK(metric(addr, "pgbust_config_last_reload_successful") == 0);
}
