// A marker password, supplied every way pgbust accepts one (conninfo forms, a PGPASSFILE, a
// Redis URL, a Redis password_file), must never be shown: not in a log line, the status line,
// an sd_notify message, an HTTP body (/status, /healthz, /metrics) or `pgbust check` output,
// whether the connection succeeds or fails (wrong password, unreachable server, a conninfo
// libpq refuses, Redis WRONGPASS). Real PostgreSQL (scram-sha-256 for the test role) and a
// real redis-server; a new form is one line in kPgForms or kRedisForms.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "harness.hpp"

using namespace pgbust::test;

namespace {

// Never a substring of anything pgbust prints by itself.
const std::string kMarker = "Zq9Mark3rX";
const std::string kRole = "secret_user";

// Every byte percent-encoded, as a URI may carry it.
std::string pct(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) out += std::string{'%', hex[c >> 4], hex[c & 15]};
  return out;
}

// {M}: the marker, {P}: the marker percent-encoded, {port}: the server's port, {passfile}:
// the file holding PgForm::passfile_line.
std::string fill(std::string text, const std::map<std::string, std::string>& vars) {
  for (const auto& [k, v] : vars)
    for (std::size_t at; (at = text.find(k)) != std::string::npos;) text.replace(at, k.size(), v);
  return text;
}

// A way to give PostgreSQL a password: the conninfo, an optional PGPASSFILE line, and the
// password libpq ends up sending ("" when no connection can come of it: libpq refuses the
// conninfo, or the password is not where libpq looks for one).
struct PgForm {
  const char* name;
  std::string conninfo;
  // Non-empty: written to {passfile}, which PGPASSFILE names unless the conninfo does.
  std::string passfile_line;
  std::string sent;
};

const std::string kKw = "host=127.0.0.1 port={port} dbname=postgres user=" + kRole;

const std::vector<PgForm> kPgForms = {
    {"escaped space", kKw + " password=abc\\ {M}", "", "abc {M}"},
    {"quoted", kKw + " password='x y\\'z {M}'", "", "x y'z {M}"},
    {"URI userinfo", "postgres://" + kRole + ":{M}@127.0.0.1:{port}/postgres", "", "{M}"},
    {"URI repeated query password",
     "postgresql://" + kRole + "@127.0.0.1:{port}/postgres?password=a&password={M}", "", "{M}"},
    {"URI percent-encoded", "postgresql://" + kRole + ":{P}@127.0.0.1:{port}/postgres", "", "{M}"},
    // libpq expands only the outermost dbname, and pgbust passes the whole conninfo as that:
    // a conninfo inside dbname= is a database name to the server, still a secret to hide.
    {"expanded dbname", "dbname='" + kKw + " password={M}'", "", ""},
    {"URI in a dbname", "dbname='postgresql://" + kRole + ":{M}@127.0.0.1:{port}/postgres'", "",
     ""},
    {"passfile keyword", kKw + " passfile={passfile}", "127.0.0.1:*:*:" + kRole + ":{M}", "{M}"},
    {"PGPASSFILE", kKw, "127.0.0.1:*:*:" + kRole + ":{M}", "{M}"},
    {"mistyped keyword", kKw + " PASSWORD={M}", "", ""},
    {"unterminated quote", kKw + " password='{M}", "", ""},
    {"URI bad percent-encoding", "postgresql://" + kRole + ":{M}%zz@127.0.0.1:{port}/postgres", "",
     ""},
};

// A way to give Redis a password: the URL, an optional password_file, and the ACL user it
// authenticates as ("" for the default user, that is requirepass) with the password.
struct RedisForm {
  const char* name;
  std::string url;
  std::string password_file;
  std::string user;
  std::string password;
};

const std::vector<RedisForm> kRedisForms = {
    {"password only", "redis://:{M}@127.0.0.1:{port}/0", "", "", "{M}"},
    {"raw @ inside the password", "redis://:pw@{M}@127.0.0.1:{port}/0", "", "", "pw@{M}"},
    {"tail after a raw @", "redis://:{M}@tail@127.0.0.1:{port}/0", "", "", "{M}@tail"},
    {"user and password", "redis://" + kRole + ":{M}@127.0.0.1:{port}/0", "", kRole, "{M}"},
    {"percent-encoded", "redis://:{P}@127.0.0.1:{port}/0", "", "", "{M}"},
    {"password_file", "redis://127.0.0.1:{port}/0", "{M}\n", "", "{M}"},
    {"user with password_file", "redis://" + kRole + "@127.0.0.1:{port}/0", "{M}", kRole, "{M}"},
};

// Refused: no connection can come of the conninfo (see PgForm::sent).
enum class Outcome { Success, WrongPassword, Unreachable, Refused };

const char* to_string(Outcome o) {
  switch (o) {
    case Outcome::Success:
      return "success";
    case Outcome::WrongPassword:
      return "wrong password";
    case Outcome::Unreachable:
      return "unreachable server";
    case Outcome::Refused:
      return "conninfo unusable";
  }
  return "?";
}

// What one scenario showed, by where it showed it.
using Shown = std::vector<std::pair<std::string, std::string>>;

std::string tail(const std::string& s, std::size_t n = 3000) {
  return s.size() > n ? "..." + s.substr(s.size() - n) : s;
}

// Fails naming where a forbidden text appeared, with the line it is on.
void check_hidden(const Shown& shown, const std::vector<std::string>& forbidden,
                  const std::string& scenario) {
  for (const auto& seen : shown)
    for (const auto& secret : forbidden) {
      const std::string& where = seen.first;  // not a structured binding: INFO captures it
      const std::string& text = seen.second;
      auto at = text.find(secret);
      std::string line;
      if (at != std::string::npos) {
        auto from = text.rfind('\n', at);
        from = from == std::string::npos ? 0 : from + 1;
        line = text.substr(from, text.find('\n', at) - from);
      }
      INFO(scenario << ": " << where << " shows the password: " << line);
      CHECK(at == std::string::npos);
    }
}

struct Rig {
  TempDir hba_dir;
  std::unique_ptr<Postgres> pg;

  Rig() {
    // The test role authenticates with scram-sha-256 over TCP; everything else is trusted.
    ::chmod(hba_dir.path().c_str(), 0755);
    auto hba = hba_dir.write("pg_hba.conf",
                             "local all all trust\n"
                             "host all " +
                                 kRole +
                                 " 127.0.0.1/32 scram-sha-256\n"
                                 "host replication " +
                                 kRole +
                                 " 127.0.0.1/32 scram-sha-256\n"
                                 "host all all 127.0.0.1/32 trust\n"
                                 "host replication all 127.0.0.1/32 trust\n");
    ::chmod(hba.c_str(), 0644);
    pg = std::make_unique<Postgres>(std::vector<std::string>{"hba_file = '" + hba.string() + "'"});
    pg->exec("CREATE ROLE " + kRole + " LOGIN SUPERUSER REPLICATION PASSWORD 'unset'");
    pg->exec("CREATE TABLE items (id int PRIMARY KEY, v int)");
    pg->exec("CREATE PUBLICATION pgbust_secrets FOR TABLE items");
  }

  std::string passfile_path() const { return (hba_dir.path() / "pgpass").string(); }

  void set_role_password(const std::string& pw) {
    std::string quoted;
    for (char c : pw) quoted += c == '\'' ? std::string("''") : std::string(1, c);
    pg->exec("ALTER ROLE " + kRole + " PASSWORD '" + quoted + "'");
  }

  // Runs `check` three ways and the daemon (until it is ready, or has shown its failure and
  // a status line), and returns everything they showed.
  Shown observe(const std::string& conninfo, const std::string& redis_url,
                const std::string& password_file, const std::string& passfile, Outcome outcome,
                bool pg_case, std::string& log) {
    TempDir dir;
    std::string pw_file_line;
    if (!password_file.empty())
      pw_file_line =
          "  password_file: \"" + dir.write("redis-password", password_file).string() + "\"\n";
    std::string yaml_conninfo;
    for (char c : conninfo) {
      if (c == '"' || c == '\\') yaml_conninfo += '\\';
      yaml_conninfo += c;
    }
    auto rules = dir.write("rules.yaml",
                           "version: 1\nrules:\n  - name: items\n    table: items\n"
                           "    delete: [\"item:${id}\"]\n");
    auto config = dir.write(
        "pgbust.yaml", "postgres: {conninfo: \"" + yaml_conninfo + "\"}\n" +
                           "sources:\n  logical: {slot: pgbust_secrets, publication: "
                           "pgbust_secrets, create_slot: true, status_interval: 1s, state_dir: \"" +
                           (dir.path() / "state").string() + "\"}\n" + "redis:\n  url: \"" +
                           redis_url + "\"\n  command_timeout: 1s\n  connect_timeout: 1s\n" +
                           pw_file_line + "rules: " + rules.string() + "\n" +
                           "status: {interval: 1s, listen: \"127.0.0.1:0\"}\n");
    std::vector<std::pair<std::string, std::string>> env;
    std::vector<std::string> prefix{"env"};
    if (!passfile.empty()) {
      std::ofstream(passfile_path()) << passfile << "\n";
      ::chmod(passfile_path().c_str(), 0600);
      if (conninfo.find("passfile=") == std::string::npos) {
        env.emplace_back("PGPASSFILE", passfile_path());
        prefix.push_back("PGPASSFILE=" + passfile_path());
      }
    }
    Shown shown;
    bool good = outcome == Outcome::Success;
    // expect_ok: nullopt when either is right (a conninfo libpq cannot parse is refused at once,
    // one it parses fails only when it connects).
    auto check = [&](std::vector<std::string> args, std::optional<bool> expect_ok) {
      std::vector<std::string> argv = prefix;
      argv.push_back(pgbust_binary());
      argv.push_back("check");
      argv.push_back("--config");
      argv.push_back(config.string());
      argv.insert(argv.end(), args.begin(), args.end());
      RunResult r = run(argv);
      std::string what = "pgbust check --config";
      for (const auto& a : args) what += " " + a;
      log += "$ " + what + " (exit " + std::to_string(r.exit_code) + ")\n" + r.output;
      if (expect_ok == true) CHECK_MESSAGE(r.exit_code == 0, what << ":\n" << tail(r.output));
      if (expect_ok == false) CHECK_MESSAGE(r.exit_code != 0, what << ":\n" << tail(r.output));
      shown.emplace_back(what, r.output);
      return r.exit_code;
    };
    // It does not connect; a conninfo libpq cannot parse is refused, as run refuses it.
    const bool refused = outcome == Outcome::Refused;
    const bool unusable = check({}, refused ? std::nullopt : std::optional<bool>(true)) != 0;
    if (unusable) CHECK(refused);
    if (pg_case) check({"--db"}, good);
    if (!pg_case) check({"--redis"}, good);

    NotifySocket notify(dir.path() / "notify.sock");
    env.emplace_back("NOTIFY_SOCKET", (dir.path() / "notify.sock").string());
    Daemon d({"run", "--config", config.string()}, env);
    // Success: ready. Failure: the failure is logged and a status line shows it (or, for a
    // conninfo libpq refuses, the daemon exits with a configuration error).
    bool settled = eventually(
        [&] {
          std::string out = d.output();
          if (good) return out.find("ready:") != std::string::npos;
          if (!d.running()) return true;
          auto failed = out.find(pg_case ? "logical: backing off" : "error: redis [");
          return failed != std::string::npos && out.find("status: ", failed) != std::string::npos;
        },
        30s);
    CHECK_MESSAGE(settled, "the daemon did not settle; output:\n" << tail(d.output()));
    if (d.running()) {
      std::string out = d.output();
      auto at = out.find("metrics on http://");
      REQUIRE(at != std::string::npos);
      at += std::strlen("metrics on http://");
      std::string addr = out.substr(at, out.find_first_of(" \n", at) - at);
      for (const char* path : {"/status", "/healthz", "/metrics"}) {
        RunResult r = run({"curl", "-s", "--max-time", "5", "http://" + addr + path});
        CHECK_MESSAGE(!r.output.empty(), "GET " << path << " answered nothing");
        shown.emplace_back(std::string("GET ") + path, r.output);
      }
      d.signal(SIGTERM);
    }
    const std::optional<int> exit = d.wait(30s);
    CHECK(exit.has_value());
    log += "$ pgbust run\n" + d.output();
    shown.emplace_back("the daemon's log", d.output());
    shown.emplace_back("sd_notify", notify.all());
    if (good) CHECK_MESSAGE(notify.all().find("READY=1") != std::string::npos, tail(notify.all()));
    if (unusable) {  // a configuration error: exit 78 before anything starts
      CHECK(exit == std::optional<int>(78));
    } else {
      CHECK_MESSAGE(notify.all().find("STATUS=") != std::string::npos, tail(notify.all()));
    }
    return shown;
  }
};

}  // namespace

TEST_CASE("a PostgreSQL password is never shown, however it is given and however it fails") {
  Rig rig;
  Redis redis;
  for (const PgForm& form : kPgForms) {
    std::vector<Outcome> outcomes{Outcome::Refused};
    if (!form.sent.empty())
      outcomes = {Outcome::Success, Outcome::WrongPassword, Outcome::Unreachable};
    for (Outcome outcome : outcomes) {
      std::string scenario = std::string(form.name) + ", " + to_string(outcome);
      CAPTURE(scenario);
      int port = outcome == Outcome::Unreachable ? free_port() : rig.pg->port();
      std::map<std::string, std::string> vars{{"{M}", kMarker},
                                              {"{P}", pct(kMarker)},
                                              {"{port}", std::to_string(port)},
                                              {"{passfile}", rig.passfile_path()}};
      rig.set_role_password(outcome == Outcome::Success ? fill(form.sent, vars)
                                                        : "not-the-password");
      std::string log;
      Shown shown = rig.observe(fill(form.conninfo, vars), redis.url(), "",
                                fill(form.passfile_line, vars), outcome, true, log);
      INFO("what was run:\n" << tail(log));
      check_hidden(shown, {kMarker, pct(kMarker)}, scenario);
    }
  }
}

TEST_CASE("a Redis password is never shown, however it is given and however it fails") {
  Rig rig;
  for (const RedisForm& form : kRedisForms) {
    for (Outcome outcome : {Outcome::Success, Outcome::WrongPassword, Outcome::Unreachable}) {
      std::string scenario = std::string(form.name) + ", " + to_string(outcome);
      CAPTURE(scenario);
      Redis redis;
      int port = outcome == Outcome::Unreachable ? free_port() : redis.port();
      std::map<std::string, std::string> vars{{"{M}", kMarker},
                                              {"{P}", pct(kMarker)},
                                              {"{port}", std::to_string(port)},
                                              {"{passfile}", rig.passfile_path()}};
      std::string pw =
          outcome == Outcome::WrongPassword ? "not-the-password" : fill(form.password, vars);
      if (form.user.empty())
        redis.command({"CONFIG", "SET", "requirepass", pw});  // the harness is locked out now
      else
        redis.command({"ACL", "SETUSER", form.user, "on", ">" + pw, "~*", "&*", "+@all"});
      std::string log;
      Shown shown = rig.observe(rig.pg->conninfo(), fill(form.url, vars),
                                fill(form.password_file, vars), "", outcome, false, log);
      INFO("what was run:\n" << tail(log));
      check_hidden(shown, {kMarker, pct(kMarker)}, scenario);
    }
  }
}
