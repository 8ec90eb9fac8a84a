// The example /etc/pgbust/pgbust.yaml that `cmake --install` ships must load as it is.
#include <doctest/doctest.h>

#include "pgbust/core/config.hpp"

TEST_CASE("the shipped example config is valid") {
  auto c = pgbust::config::load(std::filesystem::path(PGBUST_SOURCE_DIR) / "systemd/pgbust.yaml");
  REQUIRE(c.logical);
  CHECK(c.logical->slot == "pgbust");
  CHECK(c.status.listen == "127.0.0.1:9709");
  CHECK(c.rules.filename() == "rules.d");
  CHECK(c.conninfo.find("password") == std::string::npos);
}
