// Test harness: throwaway PostgreSQL / redis-server / pgbust processes (see harness.hpp).
#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "pgbust/pg/libpq.hpp"

extern char** environ;

namespace pgbust::test {

namespace fs = std::filesystem;

namespace {

// ---- small RAII and process helpers ----------------------------------------------------

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  ~Fd() { reset(); }
  void reset() noexcept {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// A port the kernel considers free on 127.0.0.1 right now.
int free_port() {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (s.fd < 0) throw_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("bind 127.0.0.1:0");
  socklen_t len = sizeof addr;
  if (::getsockname(s.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw_errno("getsockname");
  return ntohs(addr.sin_port);
}

namespace {

// Resolve a program name against PATH (before fork: nothing here is async-signal-safe).
std::string resolve(const std::string& prog) {
  if (prog.find('/') != std::string::npos) return prog;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::stringstream ss(dirs);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    fs::path cand = fs::path(dir.empty() ? "." : dir) / prog;
    if (::access(cand.c_str(), X_OK) == 0) return cand.string();
  }
  return prog;
}

struct Credentials {
  uid_t uid;
  gid_t gid;
};

// When running as root, PostgreSQL must run as `postgres`; otherwise as ourselves.
std::optional<Credentials> postgres_credentials() {
  if (::getuid() != 0) return std::nullopt;
  const passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) throw std::runtime_error("running as root but there is no user 'postgres'");
  return Credentials{pw->pw_uid, pw->pw_gid};
}

struct SpawnOptions {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;  // added to / overriding ours
  int stdin_fd = -1;                                     // -1: /dev/null
  int out_fd = -1;                                       // stdout and stderr; -1: /dev/null
  std::optional<Credentials> creds;
};

// fork + exec with the child killed when we die. Everything the child needs is prepared
// before fork, so only async-signal-safe calls run between fork and exec.
pid_t spawn(const SpawnOptions& o) {
  if (o.argv.empty()) throw std::runtime_error("spawn: empty argv");
  std::string path = resolve(o.argv[0]);
  std::vector<char*> argv;
  for (const auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    bool overridden =
        std::any_of(o.env.begin(), o.env.end(), [&](const auto& p) { return p.first == key; });
    if (!overridden) env_store.push_back(std::move(kv));
  }
  for (const auto& [k, v] : o.env) env_store.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& kv : env_store) envp.push_back(kv.data());
  envp.push_back(nullptr);

  Fd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (devnull.fd < 0) throw_errno("open /dev/null");
  int in = o.stdin_fd >= 0 ? o.stdin_fd : devnull.fd;
  int out = o.out_fd >= 0 ? o.out_fd : devnull.fd;
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork " + path);
  if (pid == 0) {
    if (o.creds) {
      gid_t g = o.creds->gid;
      if (::setgroups(1, &g) != 0 || ::setgid(o.creds->gid) != 0 || ::setuid(o.creds->uid) != 0)
        ::_exit(126);
    }
    // After setuid: a credential change clears the parent-death signal.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(125);
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(124);
    ::close_range(3, ~0U, 0);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(path.c_str(), argv.data(), envp.data());
    const char msg[] = "harness: exec failed\n";
    [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  return pid;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// waitpid with a bound; the decoded status, or nullopt if still running at the deadline.
std::optional<int> wait_pid(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_status(status);
    if (r < 0 && errno != EINTR) return -1;  // not our child (already reaped)
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

// Signal, wait bounded, then SIGKILL and reap. Never throws.
void terminate(pid_t& pid, int sig, std::chrono::milliseconds grace) noexcept {
  if (pid <= 0) return;
  ::kill(pid, SIGCONT);  // a stopped process cannot act on `sig`
  ::kill(pid, sig);
  if (!wait_pid(pid, grace)) {
    ::kill(pid, SIGKILL);
    wait_pid(pid, 10s);
  }
  pid = -1;
}

// Append-only log file opened for a child's stdout/stderr.
Fd open_log(const fs::path& p) {
  Fd f(::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (f.fd < 0) throw_errno("open " + p.string());
  return f;
}

RunResult run_as(const std::vector<std::string>& argv, const std::string& stdin_text,
                 const std::optional<Credentials>& creds, std::chrono::milliseconds timeout);

}  // namespace

// ---- The pgbust binary ------------------------------------------------------------------

std::string pgbust_binary() {
  // A benchmark may compare another build (e.g. main's) in the same run's conditions.
  if (const char* other = std::getenv("PGBUST_BENCH_BINARY"); other && *other) return other;
  return PGBUST_BINARY;
}

PgbustResult run_pgbust(const std::vector<std::string>& args) {
  static TempDir dir;
  std::string err_file = (dir.path() / "stderr").string();
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>'" + err_file + "'",
                                   pgbust_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = run(argv);
  return {r.exit_code, r.output, read_file(err_file)};
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// ---- Postgres --------------------------------------------------------------------------

struct Postgres::Impl {
  TempDir dir;
  fs::path data;
  fs::path logfile;
  fs::path bindir;
  std::optional<Credentials> creds;
  int port = 0;
  pid_t pid = -1;

  void start() {
    Fd log = open_log(logfile);
    if (creds && ::fchown(log.fd, creds->uid, creds->gid) != 0) throw_errno("chown log");
    pid = spawn({{(bindir / "postgres").string(), "-D", data.string()}, {}, -1, log.fd, creds});
    std::string ci = conninfo("postgres");
    auto deadline = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      if (PQping(ci.c_str()) == PQPING_OK) return;
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        throw std::runtime_error("postgres exited during startup (status " +
                                 std::to_string(decode_status(status)) + "); log:\n" +
                                 read_file(logfile));
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        terminate(pid, SIGKILL, 5s);
        throw std::runtime_error("postgres did not accept connections within 30s; log:\n" +
                                 read_file(logfile));
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  void stop() noexcept { terminate(pid, SIGINT, 30s); }  // SIGINT: fast shutdown
  ~Impl() { stop(); }  // also when the constructor throws half-way

  std::string conninfo(const std::string& db) const {
    return "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres dbname=" + db +
           " connect_timeout=10";
  }
};

namespace {
fs::path pg_bindir() {
  RunResult r = run_as({"pg_config", "--bindir"}, "", std::nullopt, 30s);
  std::string out = r.output;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  fs::path p = out;
  if (r.exit_code == 0 && fs::exists(p / "initdb") && fs::exists(p / "postgres")) return p;
  return "/usr/lib/postgresql/15/bin";
}
}  // namespace

Postgres::Postgres(const std::vector<std::string>& extra_settings)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.creds = postgres_credentials();
  m.bindir = pg_bindir();
  m.data = m.dir.path() / "data";
  m.logfile = m.dir.path() / "postgres.log";
  m.port = free_port();
  if (m.creds && ::chown(m.dir.path().c_str(), m.creds->uid, m.creds->gid) != 0)
    throw_errno("chown " + m.dir.path().string());

  RunResult init = run_as({(m.bindir / "initdb").string(), "-D", m.data.string(), "-U", "postgres",
                           "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"},
                          "", m.creds, 120s);
  if (init.exit_code != 0)
    throw std::runtime_error("initdb failed (exit " + std::to_string(init.exit_code) + "):\n" +
                             init.output);

  std::ofstream conf(m.data / "postgresql.conf", std::ios::app);
  conf << "\n# pgbust test harness\n"
       << "listen_addresses = '127.0.0.1'\n"
       << "port = " << m.port << "\n"
       << "unix_socket_directories = '" << m.dir.path().string() << "'\n"
       << "wal_level = logical\n"
       << "fsync = off\n"
       << "synchronous_commit = off\n"
       << "full_page_writes = off\n"
       << "max_wal_senders = 10\n"
       << "max_replication_slots = 10\n"
       << "wal_sender_timeout = 60s\n"
       << "shared_buffers = 64MB\n"
       << "log_min_messages = warning\n";
  for (const auto& s : extra_settings) conf << s << "\n";
  conf.close();
  if (!conf) throw std::runtime_error("cannot append to postgresql.conf");
  m.start();
}

Postgres::~Postgres() = default;

int Postgres::port() const {
  return impl_->port;
}
std::string Postgres::conninfo(const std::string& dbname) const {
  return impl_->conninfo(dbname);
}

void Postgres::exec(const std::string& sql, const std::string& dbname) const {
  pg::Conn c = pg::connect(impl_->conninfo(dbname));
  pg::exec(c.get(), sql, "running SQL [" + sql + "]");
}

std::optional<std::string> Postgres::scalar(const std::string& sql,
                                            const std::string& dbname) const {
  pg::Conn c = pg::connect(impl_->conninfo(dbname));
  pg::Result r = pg::exec(c.get(), sql, "running SQL [" + sql + "]");
  if (PQntuples(r.get()) == 0 || PQnfields(r.get()) == 0 || PQgetisnull(r.get(), 0, 0))
    return std::nullopt;
  return std::string(PQgetvalue(r.get(), 0, 0), PQgetlength(r.get(), 0, 0));
}

std::vector<std::vector<std::string>> Postgres::rows(const std::string& sql,
                                                     const std::string& dbname) const {
  pg::Conn c = pg::connect(impl_->conninfo(dbname));
  pg::Result r = pg::exec(c.get(), sql, "running SQL [" + sql + "]");
  std::vector<std::vector<std::string>> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    auto& row = out.emplace_back();
    for (int j = 0; j < PQnfields(r.get()); ++j)  // NULL renders as ""
      row.emplace_back(PQgetvalue(r.get(), i, j), PQgetlength(r.get(), i, j));
  }
  return out;
}

void Postgres::stop() {
  impl_->stop();
}
void Postgres::start() {
  if (impl_->pid <= 0) impl_->start();
}
void Postgres::restart() {
  stop();
  start();
}
std::string Postgres::log() const {
  return read_file(impl_->logfile);
}

// ---- Redis -----------------------------------------------------------------------------

namespace {
struct ContextDeleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// A TLS server is reached through its plain unix socket (`unix` not empty).
Context redis_connect(int port, std::chrono::milliseconds timeout, const std::string& unix = "") {
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  Context c(unix.empty() ? redisConnectWithTimeout("127.0.0.1", port, tv)
                         : redisConnectUnixWithTimeout(unix.c_str(), tv));
  if (!c) throw std::runtime_error("redis 127.0.0.1:" + std::to_string(port) + ": out of memory");
  if (c->err)
    throw std::runtime_error("connecting to redis 127.0.0.1:" + std::to_string(port) + ": " +
                             c->errstr);
  redisSetTimeout(c.get(), tv);
  return c;
}

Reply redis_command(redisContext* c, const std::vector<std::string>& argv, int port) {
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  Reply r(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lens.data())));
  std::string what = argv.empty() ? "" : argv[0];
  if (!r)
    throw std::runtime_error("redis 127.0.0.1:" + std::to_string(port) + " " + what + ": " +
                             (c->err ? c->errstr : "no reply"));
  if (r->type == REDIS_REPLY_ERROR)
    throw std::runtime_error("redis 127.0.0.1:" + std::to_string(port) + " " + what + ": " +
                             std::string(r->str, r->len));
  return r;
}

std::optional<std::string> render(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      return std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return std::nullopt;
    case REDIS_REPLY_ARRAY: {
      std::string out;
      for (size_t i = 0; i < r->elements; ++i) {
        if (i) out += '\n';
        out += render(r->element[i]).value_or("");
      }
      return out;
    }
    default:
      return std::nullopt;
  }
}
}  // namespace

struct Redis::Impl {
  TempDir dir;
  int port = 0;
  pid_t pid = -1;
  int bus_port = 0;
  RedisOptions options;
  std::string password;  // AUTH with it first (requirepass set by a test)

  bool tls() const { return !options.tls_cert.empty(); }
  std::string via() const { return tls() ? socket().string() : std::string(); }

  fs::path logfile() const { return dir.path() / "redis.log"; }
  fs::path socket() const { return dir.path() / "redis.sock"; }

  void start() {
    Fd out = open_log(dir.path() / "redis.stdout");
    std::vector<std::string> argv{
        "redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--daemonize", "no", "--dir", dir.path().string(), "--logfile",
        logfile().string(), "--unixsocket", socket().string(), "--unixsocketperm", "700",
        // DEBUG POPULATE fills a million keys in a second for the
        // keyspace-pass tests; only loopback clients may use DEBUG.
        "--enable-debug-command", "local"};
    if (tls()) {
      argv[2] = "0";
      for (std::string a : std::initializer_list<std::string>{
               "--tls-port", std::to_string(port), "--tls-cert-file", options.tls_cert,
               "--tls-key-file", options.tls_key, "--tls-ca-cert-file", options.tls_ca,
               "--tls-auth-clients", options.tls_auth_clients ? "yes" : "no"})
        argv.push_back(a);
    }
    if (options.sentinel) {  // a config file it may rewrite, before the other arguments
      const fs::path conf = dir.path() / "sentinel.conf";
      if (!fs::exists(conf)) std::ofstream(conf).flush();
      argv[0] = "redis-sentinel";
      argv.insert(argv.begin() + 1, conf.string());
    }
    argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
    if (options.cluster_bus) {
      if (bus_port == 0) bus_port = free_port();
      argv.push_back("--cluster-port");
      argv.push_back(std::to_string(bus_port));
    }
    pid = spawn({argv, {}, -1, out.fd, std::nullopt});
    auto deadline = std::chrono::steady_clock::now() + 30s;
    std::string last;
    for (;;) {
      try {
        Context c = redis_connect(port, 500ms, via());
        Reply r = redis_command(c.get(), {"PING"}, port);
        return;
      } catch (const std::exception& e) {
        last = e.what();
      }
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        throw std::runtime_error(
            "redis-server exited during startup (status " + std::to_string(decode_status(status)) +
            "): " + read_file(dir.path() / "redis.stdout") + read_file(logfile()));
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        terminate(pid, SIGKILL, 5s);
        throw std::runtime_error("redis-server did not answer PING within 30s (" + last +
                                 "); log:\n" + read_file(logfile()));
      }
      std::this_thread::sleep_for(20ms);
    }
  }

  void stop() noexcept { terminate(pid, SIGTERM, 30s); }
  ~Impl() { stop(); }
};

Redis::Redis() : Redis(RedisOptions{}) {}

Redis::Redis(RedisOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->port = free_port();
  impl_->start();
}

Redis::~Redis() = default;

int Redis::port() const {
  return impl_->port;
}
std::string Redis::url(int db) const {
  return (impl_->tls() ? "rediss://127.0.0.1:" : "redis://127.0.0.1:") +
         std::to_string(impl_->port) + "/" + std::to_string(db);
}
std::string Redis::unix_socket() const {
  return impl_->socket().string();
}

std::optional<std::string> Redis::command(const std::vector<std::string>& argv) const {
  Context c = redis_connect(impl_->port, 5s, impl_->via());
  if (!impl_->password.empty()) redis_command(c.get(), {"AUTH", impl_->password}, impl_->port);
  Reply r = redis_command(c.get(), argv, impl_->port);
  return render(r.get());
}

void Redis::auth(const std::string& password) {
  impl_->password = password;
}

bool Redis::exists(const std::string& key) const {
  return command({"EXISTS", key}).value_or("0") != "0";
}

void Redis::set(const std::string& key, const std::string& value) const {
  command({"SET", key, value});
}

std::vector<std::string> Redis::keys(const std::string& pattern) const {
  Context c = redis_connect(impl_->port, 5s, impl_->via());
  Reply r = redis_command(c.get(), {"KEYS", pattern}, impl_->port);
  std::vector<std::string> out;
  for (size_t i = 0; i < r->elements; ++i) out.emplace_back(r->element[i]->str, r->element[i]->len);
  std::sort(out.begin(), out.end());
  return out;
}

void Redis::pause() {
  if (impl_->pid > 0) ::kill(impl_->pid, SIGSTOP);
}
void Redis::resume() {
  if (impl_->pid > 0) ::kill(impl_->pid, SIGCONT);
}
void Redis::stop() {
  impl_->stop();
}
void Redis::kill() {
  terminate(impl_->pid, SIGKILL, 30s);
}
void Redis::start() {
  if (impl_->pid <= 0) impl_->start();
}
std::string Redis::log() const {
  return read_file(impl_->logfile());
}

// ---- TlsCerts --------------------------------------------------------------------------

namespace {

void openssl(const std::vector<std::string>& args, const fs::path& dir) {
  std::vector<std::string> argv{"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  Fd out = open_log(dir / "openssl.log");
  pid_t pid = spawn({argv, {}, -1, out.fd, std::nullopt});
  auto status = wait_pid(pid, 60s);
  if (!status || *status != 0)
    throw std::runtime_error("openssl " + args.front() +
                             " failed: " + read_file(dir / "openssl.log"));
}

}  // namespace

TlsCerts::TlsCerts() {
  const fs::path& d = dir_.path();
  auto f = [&](const std::string& name) { return (d / name).string(); };
  auto ca = [&](const std::string& name, const std::string& cn) {
    openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f(name + ".key"), "-out",
             f(name + ".crt"), "-days", "30", "-subj", "/CN=" + cn},
            d);
  };
  auto leaf = [&](const std::string& name, const std::string& cn, const std::string& san,
                  const std::string& issuer, const std::string& days) {
    openssl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout", f(name + ".key"), "-out",
             f(name + ".csr"), "-subj", "/CN=" + cn},
            d);
    std::vector<std::string> args{"x509",
                                  "-req",
                                  "-in",
                                  f(name + ".csr"),
                                  "-CA",
                                  f(issuer + ".crt"),
                                  "-CAkey",
                                  f(issuer + ".key"),
                                  "-CAcreateserial",
                                  "-out",
                                  f(name + ".crt"),
                                  "-days",
                                  days};
    if (!san.empty()) {
      dir_.write(name + ".ext", "subjectAltName=" + san + "\n");
      args.push_back("-extfile");
      args.push_back(f(name + ".ext"));
    }
    openssl(args, d);
  };
  ca("ca", "pgbust test CA");
  ca("otherca", "a CA nobody trusts");
  leaf("server", "127.0.0.1", "IP:127.0.0.1,DNS:localhost", "ca", "30");
  leaf("client", "pgbust client", "", "ca", "30");
  leaf("expired", "127.0.0.1", "IP:127.0.0.1,DNS:localhost", "ca", "-1");  // notAfter < now
  leaf("wronghost", "cache.example.com", "DNS:cache.example.com", "ca", "30");
  leaf("untrusted", "127.0.0.1", "IP:127.0.0.1,DNS:localhost", "otherca", "30");
  // redis-server may run as another user than the test's files' owner: readable by all.
  for (const auto& e : fs::directory_iterator(d))
    fs::permissions(e.path(), fs::perms::owner_read | fs::perms::group_read |
                                  fs::perms::others_read | fs::perms::owner_write);
}

TlsCerts::~TlsCerts() = default;

std::string TlsCerts::file(const std::string& name) const {
  return (dir_.path() / name).string();
}

// ---- Daemon ----------------------------------------------------------------------------

struct Daemon::Impl {
  TempDir dir;
  pid_t pid = -1;
  std::optional<int> exit_status;

  fs::path outfile() const { return dir.path() / "output.log"; }

  // Reap without blocking; true once the child has exited.
  bool poll_exit() {
    if (exit_status) return true;
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      exit_status = decode_status(status);
      return true;
    }
    return false;
  }

  ~Impl() {
    if (pid > 0 && !poll_exit()) {
      ::kill(pid, SIGKILL);
      wait_pid(pid, 10s);
    }
  }
};

Daemon::Daemon(const std::vector<std::string>& args,
               const std::vector<std::pair<std::string, std::string>>& env)
    : impl_(std::make_unique<Impl>()) {
  std::vector<std::string> argv{pgbust_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Fd out = open_log(impl_->outfile());
  impl_->pid = spawn({argv, env, -1, out.fd, std::nullopt});
}

Daemon::~Daemon() = default;

int Daemon::pid() const {
  return impl_->pid;
}

void Daemon::signal(int sig) {
  if (!impl_->poll_exit()) ::kill(impl_->pid, sig);
}

std::optional<int> Daemon::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (impl_->poll_exit()) return impl_->exit_status;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

bool Daemon::running() {
  return !impl_->poll_exit();
}

std::string Daemon::output() const {
  return read_file(impl_->outfile());
}

bool Daemon::wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) {
  return eventually([&] { return output().find(needle) != std::string::npos; }, timeout);
}

// ---- run -------------------------------------------------------------------------------

namespace {
RunResult run_as(const std::vector<std::string>& argv, const std::string& stdin_text,
                 const std::optional<Credentials>& creds, std::chrono::milliseconds timeout) {
  // Writing to a child that exited early must be an EPIPE, not a signal that kills the test.
  static const bool sigpipe_ignored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)sigpipe_ignored;
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) throw_errno("pipe");
  Fd in_r(in_pipe[0]), in_w(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw_errno("pipe");
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);

  pid_t pid = spawn({argv, {}, in_r.fd, out_w.fd, creds});
  in_r.reset();
  out_w.reset();
  ::fcntl(in_w.fd, F_SETFL, O_NONBLOCK);
  if (stdin_text.empty()) in_w.reset();

  RunResult result{-1, ""};
  size_t written = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out_r.fd >= 0) {
    pollfd fds[2] = {{out_r.fd, POLLIN, 0}, {in_w.fd, POLLOUT, 0}};
    int n = ::poll(fds, in_w.fd >= 0 ? 2 : 1, 100);
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      result.output += "\n[harness: killed after timeout]\n";
      break;
    }
    if (n <= 0) continue;
    if (fds[0].revents) {
      char buf[8192];
      ssize_t got = ::read(out_r.fd, buf, sizeof buf);
      if (got > 0)
        result.output.append(buf, static_cast<size_t>(got));
      else if (got == 0 || errno != EINTR)
        out_r.reset();
    }
    if (in_w.fd >= 0 && fds[1].revents) {
      ssize_t put = ::write(in_w.fd, stdin_text.data() + written, stdin_text.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if ((put < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_text.size())
        in_w.reset();
    }
  }
  in_w.reset();
  auto status = wait_pid(pid, 30s);
  if (!status) {
    ::kill(pid, SIGKILL);
    status = wait_pid(pid, 10s);
  }
  result.exit_code = status.value_or(-1);
  return result;
}
}  // namespace

RunResult run(const std::vector<std::string>& argv, const std::string& stdin_text) {
  return run_as(argv, stdin_text, std::nullopt, 300s);
}

NotifySocket::NotifySocket(const std::filesystem::path& path) {
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw_errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("bind " + path.string());
  timeval tv{0, 100000};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  reader_ = std::thread([this] {
    char buf[4096];
    while (!stop_) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      std::lock_guard lock(mu_);
      messages_.emplace_back(buf, static_cast<std::size_t>(n));
    }
  });
}

NotifySocket::~NotifySocket() {
  stop_ = true;
  reader_.join();
  ::close(fd_);
}

bool NotifySocket::saw(const std::string& needle) {
  std::lock_guard lock(mu_);
  for (const auto& m : messages_)
    if (m.find(needle) != std::string::npos) return true;
  return false;
}

std::string NotifySocket::all() {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& m : messages_) out += m + "\n";
  return out;
}

}  // namespace pgbust::test
