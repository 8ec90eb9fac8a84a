// End to end: a transaction of hundreds of thousands of rows completes with bounded memory;
// past the per-transaction key limit the rule widens instead of growing.
#include <doctest/doctest.h>

#include <fstream>

#include "e2e.hpp"

using namespace pgbust::test;

namespace {

// Peak resident set size of a process in kB (VmHWM), 0 when unreadable.
long peak_rss_kb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

}  // namespace

TEST_CASE("a 300k-row transaction is applied with bounded memory, widening past the limit") {
  E2E e;
  INFO(e.logs());
  e.pg.exec("CREATE TABLE big (id int PRIMARY KEY, grp int, pad text)");
  e.start(R"(version: 1
rules:
  - name: big-keys
    table: big
    delete: ["big:${id}"]
    bump: ["rev:big:${grp}"]
)",
          "big", "limits: {max_keys_per_transaction: 20000}\n");
  e.set_keys({"big:1", "big:299999", "rev:other", "unrelated:1"});
  e.pg.exec(
      "INSERT INTO big SELECT g, g % 100, repeat('x', 100) FROM generate_series(1, 300000) g");
  e.sync(180s);
  CHECK_FALSE(e.redis.exists("big:1"));
  CHECK_FALSE(e.redis.exists("big:299999"));
  CHECK(e.redis.exists("unrelated:1"));
  CHECK(e.daemon->output().find("widen") != std::string::npos);
  long peak = peak_rss_kb(e.daemon->pid());
  MESSAGE("pgbust peak RSS through a 300k-row transaction: " << peak / 1024 << " MB");
  CHECK(peak > 0);
  CHECK(peak < 128 * 1024);  // bounded: far below what buffering 300k rows would take
}
