// systemd/pgbust.service passes `systemd-analyze verify` and keeps the settings the daemon
// relies on; the sysusers snippet parses.
#include <doctest/doctest.h>

#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The unit with ExecStart pointing at the built binary: verify insists that it exists.
std::string unit_with_built_binary() {
  std::string unit = read_text(source_dir() / "systemd/pgbust.service");
  const std::string from = "ExecStart=/usr/bin/pgbust ";
  auto pos = unit.find(from);
  REQUIRE(pos != std::string::npos);
  unit.replace(pos, from.size(), "ExecStart=" + pgbust_binary() + " ");
  return unit;
}

bool have(const char* program) {
  return run({"sh", "-c", std::string("command -v ") + program}).exit_code == 0;
}

// Lines of `output` that talk about the unit file.
std::string unit_lines(const std::string& output, const std::string& name = "pgbust.service") {
  std::istringstream in(output);
  std::string line, found;
  while (std::getline(in, line))
    if (line.find(name) != std::string::npos) found += line + "\n";
  return found;
}

}  // namespace

TEST_CASE("systemd unit: systemd-analyze verify reports nothing") {
  if (!have("systemd-analyze")) {
    MESSAGE("SKIPPED: systemd-analyze is not installed");
    return;
  }
  TempDir dir;
  auto unit = dir.write("pgbust.service", unit_with_built_binary());
  RunResult r = run({"systemd-analyze", "verify", "--man=no", unit.string()});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(unit_lines(r.output) == "");

  // The check can fail: a broken copy is reported.
  auto broken = dir.write("broken/pgbust.service",
                          unit_with_built_binary() + "\n[Service]\nNoSuchSetting=1\n");
  RunResult b = run({"systemd-analyze", "verify", "--man=no", broken.string()});
  CHECK(unit_lines(b.output).find("NoSuchSetting") != std::string::npos);
}

TEST_CASE("systemd unit: the settings the daemon relies on") {
  std::string unit = read_text(source_dir() / "systemd/pgbust.service");
  std::multimap<std::string, std::string> keys;
  std::istringstream in(unit);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line[0] == '[') continue;
    auto eq = line.find('=');
    if (eq != std::string::npos) keys.emplace(line.substr(0, eq), line.substr(eq + 1));
  }
  auto value = [&](const std::string& k) {
    auto it = keys.find(k);
    return it == keys.end() ? std::string("<missing>") : it->second;
  };
  const std::pair<const char*, const char*> expected[] = {
      {"Type", "notify"},
      {"ExecStart", "/usr/bin/pgbust run --config /etc/pgbust/pgbust.yaml"},
      {"ExecReload", "/bin/kill -HUP $MAINPID"},
      {"Restart", "on-failure"},
      {"RestartPreventExitStatus", "78"},
      {"EnvironmentFile", "-/etc/default/pgbust"},
      {"Documentation", "file:/usr/share/doc/pgbust/README.md"},
      {"WatchdogSec", "30s"},
      {"User", "pgbust"},
      {"DynamicUser", "no"},
      {"StateDirectory", "pgbust"},
      {"RuntimeDirectory", "pgbust"},
      {"ConfigurationDirectory", "pgbust"},
      {"ProtectSystem", "strict"},
      {"ProtectHome", "yes"},
      {"PrivateTmp", "yes"},
      {"NoNewPrivileges", "yes"},
      {"PrivateDevices", "yes"},
      {"CapabilityBoundingSet", ""},
      {"RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"},
      {"MemoryDenyWriteExecute", "yes"},
      {"SystemCallFilter", "@system-service"},
      // Issue 12, part 11: past the 1.4 exposure.
      {"PrivateUsers", "yes"},
      {"PrivateMounts", "yes"},
      {"PrivateIPC", "yes"},
      {"IPAddressDeny", "any"},
      {"IPAddressAllow", "localhost"},  // the quickstart's local servers
      {"MemoryMax", "2G"},
      {"TasksMax", "64"},
  };
  for (const auto& [k, v] : expected) {
    CAPTURE(k);
    CHECK(value(k) == v);
  }
}

namespace {
// pgbust@.service as the build derives it (cmake/instance_unit.cmake), from `unit`.
std::string instance_unit(const TempDir& dir, const std::string& unit) {
  auto in = dir.write("base.service", unit);
  auto out = dir.path() / "derived@.service";
  RunResult r = run({"cmake", "-DUNIT=" + in.string(), "-DOUT=" + out.string(), "-P",
                     (source_dir() / "cmake/instance_unit.cmake").string()});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return read_text(out);
}
}  // namespace

TEST_CASE("systemd unit: pgbust@.service runs /etc/pgbust/NAME.yaml in its own directories") {
  TempDir dir;
  std::string unit = instance_unit(dir, read_text(source_dir() / "systemd/pgbust.service"));
  for (const char* line :
       {"ExecStart=/usr/bin/pgbust run --config /etc/pgbust/%i.yaml\n",
        "StateDirectory=pgbust/%i\n", "RuntimeDirectory=pgbust/%i\n",
        "EnvironmentFile=-/etc/default/pgbust-%i\n", "RestartPreventExitStatus=78\n",
        "Type=notify\n", "ProtectSystem=strict\n"}) {
    CAPTURE(line);
    CHECK(unit.find(line) != std::string::npos);
  }
  CHECK(unit.find("pgbust.yaml\n") == std::string::npos);
  CHECK(unit.find("StateDirectory=pgbust\n") == std::string::npos);

  if (have("systemd-analyze")) {
    auto path =
        dir.write("units/pgbust@main.service", instance_unit(dir, unit_with_built_binary()));
    RunResult r = run({"systemd-analyze", "verify", "--man=no", path.string()});
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK(unit_lines(r.output, "pgbust@main.service") == "");
  }

  // A base unit without an anchor the template needs fails the build, naming it.
  auto base = read_text(source_dir() / "systemd/pgbust.service");
  auto pos = base.find("RuntimeDirectory=pgbust\n");
  REQUIRE(pos != std::string::npos);
  base.erase(pos, std::string("RuntimeDirectory=pgbust\n").size());
  auto in = dir.write("moved.service", base);
  RunResult bad = run({"cmake", "-DUNIT=" + in.string(), "-DOUT=" + (dir.path() / "x").string(),
                       "-P", (source_dir() / "cmake/instance_unit.cmake").string()});
  CHECK(bad.exit_code != 0);
  CHECK(bad.output.find("RuntimeDirectory=pgbust") != std::string::npos);
}

TEST_CASE("systemd unit: the sysusers snippet creates the pgbust user") {
  if (!have("systemd-sysusers")) {
    MESSAGE("SKIPPED: systemd-sysusers is not installed");
    return;
  }
  TempDir root;
  RunResult r = run({"systemd-sysusers", "--root=" + root.path().string(), "--dry-run",
                     (source_dir() / "systemd/pgbust.sysusers.conf").string()});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("Creating user 'pgbust'") != std::string::npos);
}

TEST_CASE("systemd unit: systemd-analyze security rates it SAFE (exposure at most 1.0)") {
  if (!have("systemd-analyze")) {
    MESSAGE("SKIPPED: systemd-analyze is not installed");
    return;
  }
  TempDir dir;
  auto unit = dir.write("pgbust.service", unit_with_built_binary());
  RunResult r = run({"systemd-analyze", "security", "--offline=true", "--no-pager", unit.string()});
  if (r.output.find("unrecognized option") != std::string::npos) {
    MESSAGE("SKIPPED: this systemd-analyze has no --offline");
    return;
  }
  INFO(r.output);
  const std::string marker = "Overall exposure level for pgbust.service: ";
  auto at = r.output.find(marker);
  REQUIRE(at != std::string::npos);
  double exposure = std::stod(r.output.substr(at + marker.size()));
  MESSAGE("systemd-analyze security exposure: " << exposure);
  CHECK(exposure <= 1.0);
}

TEST_CASE("systemd unit: the commented credentials and address lines verify once enabled") {
  if (!have("systemd-analyze")) {
    MESSAGE("SKIPPED: systemd-analyze is not installed");
    return;
  }
  // What an operator does: uncomment LoadCredential= (and PGPASSFILE=%d/...), add addresses.
  std::string unit = unit_with_built_binary();
  TempDir dir;
  auto redis_pw = dir.write("redis-password", "secret\n");
  auto pgpass = dir.write("pgpass", "*:*:*:*:secret\n");
  std::size_t enabled = 0;
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"#LoadCredential=redis-password:/etc/pgbust/redis-password",
            "LoadCredential=redis-password:" + redis_pw.string()},
           {"#LoadCredential=pgpass:/etc/pgbust/pgpass",
            "LoadCredential=pgpass:" + pgpass.string()},
           {"#Environment=PGPASSFILE=%d/pgpass", "Environment=PGPASSFILE=%d/pgpass"},
           {"#   IPAddressAllow=10.0.4.17/32 10.0.4.18/32",
            "IPAddressAllow=10.0.4.17/32 10.0.4.18/32"}}) {
    auto pos = unit.find(from);
    CAPTURE(from);
    REQUIRE(pos != std::string::npos);
    unit.replace(pos, from.size(), to);
    ++enabled;
  }
  CHECK(enabled == 4);
  auto path = dir.write("enabled/pgbust.service", unit);
  RunResult r = run({"systemd-analyze", "verify", "--man=no", path.string()});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(unit_lines(r.output) == "");
}
