// `cmake --install`: the unit runs the binary this install put down (paths from the prefix),
// and a re-install never overwrites an edited /etc/pgbust/pgbust.yaml.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The build tree is where the built binary is.
std::filesystem::path build_dir() {
  return std::filesystem::path(pgbust_binary()).parent_path();
}

RunResult install(const std::filesystem::path& destdir) {
  return run({"env", "DESTDIR=" + destdir.string(), "cmake", "--install", build_dir().string()});
}

// CMAKE_INSTALL_PREFIX of the build tree, as configured.
std::string configured_prefix() {
  std::istringstream in(read_text(build_dir() / "CMakeCache.txt"));
  const std::string key = "CMAKE_INSTALL_PREFIX:PATH=";
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  return "";
}

}  // namespace

TEST_CASE("install: the unit's paths follow the prefix; an edited config survives") {
  std::string prefix = configured_prefix();
  REQUIRE_FALSE(prefix.empty());
  // GNUInstallDirs: /etc for the /usr prefix, PREFIX/etc otherwise.
  std::string etc = prefix == "/usr" ? "/etc" : prefix + "/etc";
  TempDir dest;
  auto r = install(dest.path());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto under = [&](const std::string& p) { return dest.path() / p.substr(1); };
  CHECK(std::filesystem::exists(under(prefix + "/bin/pgbust")));
  auto units = r.output.find("/systemd/system/pgbust.service");
  REQUIRE(units != std::string::npos);
  std::string unit_path = r.output.substr(0, units);
  unit_path = unit_path.substr(unit_path.rfind(dest.path().string()));
  std::string unit = read_text(unit_path + "/systemd/system/pgbust.service");
  CAPTURE(unit_path);
  CHECK(unit.find("\nExecStart=" + prefix + "/bin/pgbust run --config " + etc +
                  "/pgbust/pgbust.yaml\n") != std::string::npos);
  CHECK(unit.find("\nRestartPreventExitStatus=78\n") != std::string::npos);
  // The template for one daemon per database: /etc/pgbust/NAME.yaml under the same prefix.
  std::string instance = read_text(unit_path + "/systemd/system/pgbust@.service");
  CHECK(instance.find("\nExecStart=" + prefix + "/bin/pgbust run --config " + etc +
                      "/pgbust/%i.yaml\n") != std::string::npos);
  CHECK(instance.find("\nStateDirectory=pgbust/%i\n") != std::string::npos);
  auto config = under(etc + "/pgbust/pgbust.yaml");
  REQUIRE(std::filesystem::exists(config));
  CHECK(std::filesystem::is_directory(under(etc + "/pgbust/rules.d")));
  CHECK(std::filesystem::exists(under(prefix + "/lib/sysusers.d/pgbust.conf")));
  CHECK(std::filesystem::exists(under(prefix + "/share/doc/pgbust/README.md")));
  CHECK(std::filesystem::exists(under(prefix + "/share/doc/pgbust/monitoring/pgbust-alerts.yml")));

  // The operator edits the config; installing again keeps it and puts the shipped one beside.
  std::string shipped = read_text(config);
  { std::ofstream(config) << "# edited\n" << shipped; }
  r = install(dest.path());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(read_text(config) == "# edited\n" + shipped);
  CHECK(read_text(under(etc + "/pgbust/pgbust.yaml.dist")) == shipped);
}
