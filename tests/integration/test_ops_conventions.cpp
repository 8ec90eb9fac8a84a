// What operators' tools expect of the running binary: `--version` and pgbust_build_info from
// the build, journald (native protocol and priority prefixes) under systemd, JSON log lines,
// process_* and config-reload metrics. No PostgreSQL or Redis is needed: the daemon serves /metrics
// while its source backs off from a port nobody listens on.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

extern char** environ;

using namespace pgbust::test;

namespace {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kRules =
    "version: 1\n"
    "rules:\n"
    "  - name: one\n"
    "    table: public.t\n"
    "    delete: [\"t:${id}\"]\n";

std::string config(const std::string& log = "") {
  return "postgres: {conninfo: \"host=127.0.0.1 port=1 dbname=app connect_timeout=2\"}\n"
         "sources:\n"
         "  logical: {slot: ops_conventions, publication: ops_conventions}\n"
         "redis: {url: \"redis://127.0.0.1:1/0\"}\n"
         "rules: rules.yaml\n"
         "status: {interval: 1h, listen: \"127.0.0.1:0\"}\n" +
         log;
}

// pgbust with stderr on a file and JOURNAL_STREAM naming that file's device and inode, as
// systemd sets it for a service whose stderr is the journal. Killed on destruction.
class JournalDaemon {
 public:
  // `wrapper`: a command line pgbust's runs under (unshare ...).
  JournalDaemon(const std::vector<std::string>& args, const std::filesystem::path& log,
                bool matching_stream = true, const std::vector<std::string>& wrapper = {})
      : log_(log) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    std::string stream = std::to_string(st.st_dev) + ":" +
                         std::to_string(matching_stream ? st.st_ino : st.st_ino + 1);
    std::vector<std::string> env{"JOURNAL_STREAM=" + stream};
    for (char** e = environ; *e; ++e)
      if (std::string_view(*e).rfind("JOURNAL_STREAM=", 0) != 0) env.emplace_back(*e);
    std::vector<std::string> argv = wrapper;
    argv.push_back(pgbust_binary());
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_adddup2(&fa, fd, STDERR_FILENO);
    ::posix_spawn_file_actions_adddup2(&fa, fd, STDOUT_FILENO);
    int rc = ::posix_spawnp(&pid_, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
    ::posix_spawn_file_actions_destroy(&fa);
    ::close(fd);
    REQUIRE(rc == 0);
  }
  ~JournalDaemon() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::string output() const { return read_text(log_); }
  bool wait_for(const std::string& needle) {
    return eventually([&] { return output().find(needle) != std::string::npos; }, 30s);
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // Exit status, or -1 when it did not exit within 30 s.
  int wait() {
    int status = 0;
    bool done = eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 30s);
    if (!done) return -1;
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

std::string metrics_address(const std::string& log) {
  std::smatch m;
  static const std::regex re("metrics on http://([0-9.]+:[0-9]+)");
  return std::regex_search(log, m, re) ? std::string(m[1]) : std::string();
}

std::string scrape(const std::string& addr) {
  return run({"curl", "-s", "--max-time", "5", "http://" + addr + "/metrics"}).output;
}

// The value of one series (name and labels exactly as rendered), or "" when absent.
std::string series(const std::string& metrics, const std::string& name) {
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + " ", 0) == 0) return line.substr(name.size() + 1);
  return "";
}

std::string project_version() {
  std::smatch m;
  std::string cmake = read_text(source_dir() / "CMakeLists.txt");
  static const std::regex re("project\\(pgbust VERSION ([0-9.]+)");
  REQUIRE(std::regex_search(cmake, m, re));
  return m[1];
}

}  // namespace

TEST_CASE("--version: the CMake project version and the git revision of the build") {
  auto r = run({pgbust_binary(), "--version"});
  CHECK(r.exit_code == 0);
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_match(r.output, m, std::regex("pgbust (\\S+) \\((\\S+)\\)\n")),
                  r.output);
  CHECK(m[1] == project_version());
  auto head = run({"git", "-C", source_dir().string(), "rev-parse", "--short=7", "HEAD"});
  if (head.exit_code == 0) {
    // The revision is read when CMake configures: HEAD itself in a fresh build, an ancestor
    // of it in a build directory configured before later commits.
    std::string rev = std::string(m[2]).substr(0, std::string(m[2]).find_first_of("-+"));
    CAPTURE(rev);
    auto ancestor =
        run({"git", "-C", source_dir().string(), "merge-base", "--is-ancestor", rev, "HEAD"});
    CHECK(ancestor.exit_code == 0);
  } else {
    CHECK(m[2] == "unknown");
  }
}

TEST_CASE("journald: every line carries its priority, so journalctl -p filters") {
  TempDir dir;
  dir.write("rules.yaml", kRules);
  auto cfg = dir.write("pgbust.yaml", config());
  JournalDaemon d({"run", "--config", cfg.string()}, dir.path() / "stderr");
  // info: the start line; warning: the source backing off from a closed port.
  REQUIRE_MESSAGE(d.wait_for("metrics on http://"), d.output());
  REQUIRE_MESSAGE(d.wait_for("<4>warning: logical: backing off"), d.output());
  // error: a reload with broken rules.
  dir.write("rules.yaml", kRules + "    no_such_field: 1\n");
  d.signal(SIGHUP);
  REQUIRE_MESSAGE(d.wait_for("reload failed"), d.output());
  d.signal(SIGTERM);
  CHECK(d.wait() >= 0);
  std::string out = d.output();
  INFO(out);
  CHECK(out.find("<6>info: pgbust starting") != std::string::npos);
  CHECK(out.find("<3>error: ") != std::string::npos);
  CHECK(out.find("<3>error: reload failed") != std::string::npos);
  // Every line has a prefix (journald would otherwise file it at the default, info), and no
  // timestamp (journald adds its own).
  for (const auto& line : lines(out)) {
    CAPTURE(line);
    CHECK(std::regex_match(line, std::regex("<[2-7]>[a-z]+: .*")));
  }
}

// A journald stand-in: a datagram socket at DIR/systemd/journal/socket, which a process that
// bind-mounts DIR over /run in its own mount namespace sees as the journal's socket.
class FakeJournal {
 public:
  explicit FakeJournal(const std::filesystem::path& run_dir) {
    std::filesystem::create_directories(run_dir / "systemd/journal");
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = (run_dir / "systemd/journal/socket").string();
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~FakeJournal() { ::close(fd_); }
  // The records received so far, each as its KEY=value fields (the native protocol: one
  // "KEY=value\n" per field, or "KEY\n", a 64-bit little-endian length and the value).
  const std::vector<std::vector<std::string>>& records() {
    char buf[65536];
    for (ssize_t n; (n = ::recv(fd_, buf, sizeof buf, 0)) > 0;) {
      std::string d(buf, static_cast<std::size_t>(n));
      std::vector<std::string> fields;
      for (std::size_t i = 0; i < d.size();) {
        auto nl = d.find('\n', i);
        if (nl == std::string::npos) break;
        std::string line = d.substr(i, nl - i);
        if (line.find('=') != std::string::npos) {
          fields.push_back(line);
          i = nl + 1;
        } else {
          std::uint64_t len = 0;
          std::memcpy(&len, d.data() + nl + 1, 8);  // little-endian, as on x86-64 and arm64
          fields.push_back(line + "=" + d.substr(nl + 9, len));
          i = nl + 9 + len + 1;
        }
      }
      records_.push_back(std::move(fields));
    }
    return records_;
  }
  // The first record that has every one of `fields`, or nullptr.
  const std::vector<std::string>* find(const std::vector<std::string>& fields) {
    for (const auto& r : records()) {
      bool all = true;
      for (const auto& f : fields) all = all && std::find(r.begin(), r.end(), f) != r.end();
      if (all) return &r;
    }
    return nullptr;
  }

 private:
  int fd_ = -1;
  std::vector<std::vector<std::string>> records_;
};

TEST_CASE("journald: under systemd, records go through the native protocol with their fields") {
  if (::geteuid() != 0 || run({"unshare", "-m", "true"}).exit_code != 0) {
    MESSAGE("skipped: needs root and mount namespaces (unshare -m) for a stand-in journal");
    return;
  }
  TempDir dir, run_dir;
  FakeJournal journal(run_dir.path());
  dir.write("rules.yaml", kRules);
  auto cfg = dir.write("pgbust.yaml", config());
  // pgbust sees run_dir as /run, so sd_journal_sendv reaches the stand-in.
  JournalDaemon d({"run", "--config", cfg.string()}, dir.path() / "stderr", true,
                  {"unshare", "-m", "sh", "-c", "mount --bind \"$0\" /run && exec \"$@\"",
                   run_dir.path().string()});
  const std::vector<std::string>* warning = nullptr;
  CHECK(eventually(
      [&] {
        for (const auto& r : journal.records())
          for (const auto& f : r)
            if (f.starts_with("MESSAGE=logical: backing off") &&
                std::find(r.begin(), r.end(), "PRIORITY=4") != r.end())
              warning = &r;
        return warning != nullptr;
      },
      30s));
  INFO("stderr: " << d.output());
  REQUIRE(warning != nullptr);
  CHECK(std::find(warning->begin(), warning->end(), "PGBUST_SOURCE=logical") != warning->end());
  CHECK(std::find(warning->begin(), warning->end(), "SYSLOG_IDENTIFIER=pgbust") != warning->end());
  CHECK(journal.find({"PRIORITY=6", "SYSLOG_IDENTIFIER=pgbust"}) != nullptr);  // the start line
  // The source's own failure line (its session): an error, with the source's name.
  CHECK(journal.find({"PRIORITY=3", "PGBUST_SOURCE=logical"}) != nullptr);
  d.signal(SIGTERM);
  CHECK(d.wait() >= 0);
  // The journal took every record: nothing on stderr.
  CHECK(d.output().empty());
}

TEST_CASE("journald: an invalid config is logged at LOG_ERR and exits 78") {
  TempDir dir;
  dir.write("rules.yaml", kRules);
  auto cfg = dir.write("pgbust.yaml", config() + "no_such_key: 1\n");
  JournalDaemon d({"run", "--config", cfg.string()}, dir.path() / "stderr");
  CHECK(d.wait() == 78);
  auto out = lines(d.output());
  INFO(d.output());
  REQUIRE_FALSE(out.empty());
  for (const auto& line : out) CHECK(line.rfind("<3>", 0) == 0);
}

TEST_CASE("journald: JOURNAL_STREAM naming another stream (a shell under a service) is ignored") {
  TempDir dir;
  dir.write("rules.yaml", kRules);
  auto cfg = dir.write("pgbust.yaml", config());
  JournalDaemon d({"run", "--config", cfg.string()}, dir.path() / "stderr", false);
  REQUIRE_MESSAGE(d.wait_for("metrics on http://"), d.output());
  d.signal(SIGTERM);
  d.wait();
  std::string out = d.output();
  INFO(out);
  CHECK(out.find("<6>") == std::string::npos);
  // A terminal gets timestamps: "2026-01-31 12:00:00.123 info: pgbust starting".
  CHECK(std::regex_search(out, std::regex("\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} "
                                          "info: pgbust starting")));
}

TEST_CASE("log.format: json writes one object per line") {
  TempDir dir;
  dir.write("rules.yaml", kRules);
  auto cfg = dir.write("pgbust.yaml", config("log: {format: json, journal: no}\n"));
  Daemon d({"run", "--config", cfg.string()});
  REQUIRE_MESSAGE(d.wait_for_output("backing off", 30s), d.output());
  d.signal(SIGTERM);
  d.wait();
  auto out = lines(d.output());
  INFO(d.output());
  REQUIRE(out.size() >= 2);
  static const std::regex object(
      "\\{\"time\":\"\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z\",\"level\":\"[a-z]+\","
      "\"message\":\".*\"\\}");
  for (const auto& line : out) {
    CAPTURE(line);
    CHECK(std::regex_match(line, object));
  }
  CHECK(d.output().find("\"level\":\"warning\",\"message\":\"logical: backing off") !=
        std::string::npos);
}

TEST_CASE("metrics: build info, process_* and the config reload result") {
  TempDir dir;
  dir.write("rules.yaml", kRules);
  auto cfg = dir.write("pgbust.yaml", config());
  double before = static_cast<double>(::time(nullptr));
  Daemon d({"run", "--config", cfg.string()});
  REQUIRE_MESSAGE(d.wait_for_output("metrics on http://", 30s), d.output());
  std::string addr = metrics_address(d.output());
  REQUIRE_FALSE(addr.empty());
  std::string m = scrape(addr);
  INFO(m);

  auto version = run({pgbust_binary(), "--version"}).output;  // "pgbust V (R)\n"
  std::smatch v;
  REQUIRE(std::regex_match(version, v, std::regex("pgbust (\\S+) \\((\\S+)\\)\n")));
  CHECK(series(m, "pgbust_build_info{version=\"" + std::string(v[1]) + "\",revision=\"" +
                      std::string(v[2]) + "\"}") == "1");
  CHECK(m.find("# TYPE process_cpu_seconds_total counter") != std::string::npos);

  double start = std::stod(series(m, "process_start_time_seconds"));
  CHECK(start >= before - 2);
  CHECK(start <= static_cast<double>(::time(nullptr)) + 2);
  CHECK(std::stod(series(m, "process_resident_memory_bytes")) > 1e6);
  CHECK(std::stod(series(m, "process_virtual_memory_bytes")) > 1e6);
  CHECK(std::stod(series(m, "process_cpu_seconds_total")) >= 0);
  CHECK(std::stod(series(m, "process_open_fds")) >= 3);
  CHECK(std::stod(series(m, "process_max_fds")) >= 64);

  CHECK(series(m, "pgbust_config_last_reload_successful") == "1");
  double loaded = std::stod(series(m, "pgbust_config_last_reload_success_timestamp_seconds"));
  CHECK(loaded >= before - 2);

  // A failed reload: 0, and the timestamp stays that of the last success.
  dir.write("rules.yaml", kRules + "    no_such_field: 1\n");
  d.signal(SIGHUP);
  REQUIRE(d.wait_for_output("reload failed"));
  m = scrape(addr);
  CHECK(series(m, "pgbust_config_last_reload_successful") == "0");
  CHECK(std::stod(series(m, "pgbust_config_last_reload_success_timestamp_seconds")) == loaded);
  CHECK(series(m, "pgbust_reloads_total{result=\"failed\"}") == "1");

  // Fixed: 1 again, with a later timestamp.
  dir.write("rules.yaml", kRules);
  d.signal(SIGHUP);
  REQUIRE(d.wait_for_output("rules reloaded"));
  m = scrape(addr);
  CHECK(series(m, "pgbust_config_last_reload_successful") == "1");
  CHECK(std::stod(series(m, "pgbust_config_last_reload_success_timestamp_seconds")) >= loaded);
  d.signal(SIGTERM);
  d.wait();
}
