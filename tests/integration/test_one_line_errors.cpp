// PostgreSQL's errors come with DETAIL:, HINT: and CONTEXT: lines. pgbust's log is one line
// per event (journald, log shippers, the status line): the server's whole text must arrive
// on the line that names the server, never as a second line that looks like its own event.
#include <doctest/doctest.h>

#include <sstream>

#include "e2e.hpp"

using namespace pgbust::test;

TEST_CASE("a server error with a HINT stays on one log line") {
  E2E env({"max_replication_slots = 1"});
  env.pg.exec("SELECT pg_create_logical_replication_slot('taken', 'pgoutput')");
  env.pg.exec("CREATE TABLE items (id int PRIMARY KEY)");
  env.pg.exec("CREATE PUBLICATION " + env.publication + " FOR TABLE items");
  auto rules = env.write_rules(
      "version: 1\nrules:\n  - name: items\n    table: items\n"
      "    delete: [\"item:${id}\"]\n");
  auto config = env.dir.write("pgbust.yaml", env.config(rules.string()));
  env.run_daemon(config.string());
  INFO(env.logs());
  REQUIRE(env.daemon->wait_for_output("all replication slots are in use", 30s));
  REQUIRE(env.daemon->wait_for_output("max_replication_slots", 5s));
  std::istringstream lines(env.daemon->output());
  int seen = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("max_replication_slots") == std::string::npos) continue;
    ++seen;
    // The HINT is on the line of the error it belongs to, which names the server.
    CHECK(line.find("all replication slots are in use") != std::string::npos);
    CHECK(line.find("127.0.0.1:" + std::to_string(env.pg.port())) != std::string::npos);
  }
  CHECK(seen >= 1);
}
