// Throwaway PostgreSQL 15 and redis-server instances on free loopback ports, and a runner
// for the real pgbust binary, for integration tests and benchmarks.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace pgbust::test {

// A port the kernel considers free on 127.0.0.1 right now (nothing listens on it).
int free_port();

// A datagram socket standing in for systemd's notification socket (give its path as
// NOTIFY_SOCKET). Like systemd, it reads continuously (a full buffer would block the sender).
class NotifySocket {
 public:
  explicit NotifySocket(const std::filesystem::path& path);
  ~NotifySocket();
  bool saw(const std::string& needle);  // some message so far contains `needle`
  std::string all();                    // every message so far, one per line

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> messages_;
  std::thread reader_;
};

// Every child process gets PR_SET_PDEATHSIG(SIGKILL), so a crashed test leaves no servers
// behind. The signal fires when the *thread* that started the child exits: create servers
// and daemons on a thread that outlives them (normally the test's main thread).

// A PostgreSQL 15 cluster: initdb in a temp dir (as user postgres when running as root),
// wal_level=logical, fsync=off, trust auth on 127.0.0.1, a free port.
class Postgres {
 public:
  explicit Postgres(const std::vector<std::string>& extra_settings = {});
  ~Postgres();  // stops the server by pid and removes the data directory
  int port() const;
  std::string conninfo(const std::string& dbname = "postgres") const;
  // Run SQL (several statements allowed); throws std::runtime_error with the server message.
  void exec(const std::string& sql, const std::string& dbname = "postgres") const;
  // First column of the first row, nullopt for no row or NULL.
  std::optional<std::string> scalar(const std::string& sql,
                                    const std::string& dbname = "postgres") const;
  // Every row, every column as text (NULL as "").
  std::vector<std::vector<std::string>> rows(const std::string& sql,
                                             const std::string& dbname = "postgres") const;
  void stop();   // fast shutdown, keeps the data directory
  void start();  // on the same port
  void restart();
  std::string log() const;  // the server log, for failure messages

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Certificates for TLS tests, made with the openssl tool in a temp dir: a CA; server
// certificates signed by it (valid for 127.0.0.1 and localhost; an expired one; one for
// another host name); a client certificate; and a server certificate from a CA nobody
// trusts. file("ca.crt"), file("server.crt"), file("server.key"), file("client.crt"),
// file("client.key"), file("expired.crt"), file("wronghost.crt"), file("untrusted.crt")
// (each .crt with its .key).
class TlsCerts {
 public:
  TlsCerts();
  ~TlsCerts();
  std::string file(const std::string& name) const;

 private:
  TempDir dir_;
};

// How to start a test Redis. With tls_cert set it speaks TLS only on its TCP port
// (--port 0 --tls-port P); the harness's own commands then use the plain unix socket.
struct RedisOptions {
  std::string tls_cert, tls_key, tls_ca;  // server certificate, its key, CA for clients
  bool tls_auth_clients = false;          // require a client certificate (mutual TLS)
  std::vector<std::string> extra_args{};  // more redis-server arguments ("--cluster-enabled", ..)
  bool cluster_bus = false;               // a free --cluster-port too (port + 10000 may not exist)
  // redis-sentinel with its own (initially empty) config file; extra_args then carry the
  // "--sentinel monitor NAME HOST PORT QUORUM" lines.
  bool sentinel = false;
};

// A redis-server with no persistence on a free loopback port.
class Redis {
 public:
  Redis();
  explicit Redis(RedisOptions options);
  ~Redis();
  int port() const;
  std::string url(int db = 0) const;  // redis://127.0.0.1:PORT/DB (rediss:// with TLS)
  std::string unix_socket() const;    // path of its unix socket (mode 700)
  // One short-lived connection (5 s timeout) per call: fine for checks, not for benchmarks.
  // Run a command (argv form) and return the reply rendered as text: strings as is, integers
  // in decimal, nil as nullopt, arrays joined by '\n', errors thrown.
  std::optional<std::string> command(const std::vector<std::string>& argv) const;
  // Later commands AUTH with `password` first (after a test set requirepass); "": none.
  void auth(const std::string& password);
  bool exists(const std::string& key) const;
  void set(const std::string& key, const std::string& value) const;
  std::vector<std::string> keys(const std::string& pattern = "*") const;  // sorted
  void pause();   // SIGSTOP: the server stops answering
  void resume();  // SIGCONT
  void kill();    // SIGKILL (a crash), same port kept for start()
  void stop();    // shutdown, same port kept for start()
  void start();
  std::string log() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The real pgbust binary as a child process; stderr captured to a file.
class Daemon {
 public:
  Daemon(const std::vector<std::string>& args,
         const std::vector<std::pair<std::string, std::string>>& env = {});
  ~Daemon();  // SIGKILL if still running, then reap
  int pid() const;
  void signal(int sig);
  // Wait for exit; returns the exit status (or 128+signal), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout = 30s);
  bool running();
  std::string output() const;  // stderr+stdout so far
  bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout = 15s);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Run a command to completion, capturing stdout+stderr; returns exit code (128+signal when
// killed; killed after 5 minutes). The first call ignores SIGPIPE in the test process, so a
// child that exits before reading its stdin cannot kill the test; children get SIG_DFL back.
struct RunResult {
  int exit_code;
  std::string output;
};
RunResult run(const std::vector<std::string>& argv, const std::string& stdin_text = "");

// The built pgbust binary run to completion with `args`, stdout and stderr captured apart.
struct PgbustResult {
  int exit_code;
  std::string out, err;
};
PgbustResult run_pgbust(const std::vector<std::string>& args);

// `text` split at newlines (no empty last line for a final newline).
std::vector<std::string> lines(const std::string& text);

// The path of the built pgbust binary.
std::string pgbust_binary();

}  // namespace pgbust::test
