// Shared helpers for the end-to-end benchmarks: process CPU and memory from /proc, a child
// process timed with wait4, a pipelining Redis client, a persistent PostgreSQL session, the
// benchmark table, statistics. Benchmarks print figures; nothing here fails on time.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "pgbust/pg/libpq.hpp"

namespace pgbust::bench {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
// The harness's servers and processes, by their short names in every benchmark.
using test::Daemon;
using test::Postgres;
using test::Redis;
using test::TempDir;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ---- statistics -----------------------------------------------------------------------

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The p-th percentile (0..100) of sorted values, nearest rank.
inline double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// ---- /proc ----------------------------------------------------------------------------

struct CpuTimes {
  double user = 0, sys = 0;
  double total() const { return user + sys; }
};

// Fields of /proc/PID/stat after the command name (field 3 is index 0), empty if gone.
inline std::vector<std::string> proc_stat_fields(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = all.rfind(')');
  std::vector<std::string> out;
  if (close == std::string::npos) return out;
  std::istringstream ss(all.substr(close + 2));
  for (std::string f; ss >> f;) out.push_back(f);
  return out;
}

// utime/stime of a process (its own threads), in seconds.
inline CpuTimes proc_cpu(int pid) {
  auto f = proc_stat_fields(pid);
  if (f.size() < 13) return {};
  double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return {std::stod(f[11]) / tick, std::stod(f[12]) / tick};  // fields 14, 15
}

// cutime/cstime: the CPU of its children that exited and were reaped.
inline CpuTimes proc_children_cpu(int pid) {
  auto f = proc_stat_fields(pid);
  if (f.size() < 15) return {};
  double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return {std::stod(f[13]) / tick, std::stod(f[14]) / tick};  // fields 16, 17
}

// Time on CPU of every thread (ns resolution, user+sys), from /proc/PID/task/*/schedstat;
// falls back to utime+stime.
inline double proc_runtime(int pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  double ns = 0;
  bool any = false;
  if (d) {
    while (dirent* e = ::readdir(d.get())) {
      if (e->d_name[0] == '.') continue;
      std::ifstream in(dir + "/" + e->d_name + "/schedstat");
      double v = 0;
      if (in >> v) ns += v, any = true;
    }
  }
  if (!any || ns == 0) return proc_cpu(pid).total();
  return ns / 1e9;
}

// A "VmHWM:" / "VmRSS:" line of /proc/PID/status in kB, 0 if unreadable.
inline long proc_status_kb(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return 0;
}
inline long peak_rss_kb(int pid) {
  return proc_status_kb(pid, "VmHWM");
}
inline long rss_kb(int pid) {
  return proc_status_kb(pid, "VmRSS");
}

// Busy and total CPU time of the whole machine (all CPUs, /proc/stat), in seconds.
struct MachineCpu {
  double busy = 0, total = 0;
};
inline MachineCpu machine_cpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[8] = {0};
  in >> cpu;
  for (double& x : v) in >> x;
  double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double total = 0;
  for (double x : v) total += x;
  return {(total - v[3] - v[4]) / tick, total / tick};  // idle and iowait are not busy
}

inline int parent_pid(int pid) {
  return static_cast<int>(proc_status_kb(pid, "PPid"));
}

// ---- a child process timed to the millisecond, with its rusage ---------------------------

class Child {
 public:
  // Starts argv[0] (a path) with stdout and stderr appended to `log`.
  Child(const std::vector<std::string>& argv, const std::string& log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0) throw std::runtime_error("open " + log + ": " + std::strerror(errno));
    start_ = Clock::now();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::close_range(3, ~0U, 0);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out);
  }
  ~Child() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      wait(10s);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  int pid() const { return pid_; }
  // Waits (1 ms resolution) for the exit; false on timeout. Then status(), elapsed(), cpu().
  bool wait(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (!status_) {
      int st = 0;
      rusage ru{};
      pid_t r = ::wait4(pid_, &st, WNOHANG, &ru);
      if (r == pid_) {
        elapsed_ = seconds_since(start_);
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        cpu_ = {static_cast<double>(ru.ru_utime.tv_sec) + ru.ru_utime.tv_usec / 1e6,
                static_cast<double>(ru.ru_stime.tv_sec) + ru.ru_stime.tv_usec / 1e6};
        peak_kb_ = ru.ru_maxrss;
        break;
      }
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }
  int status() const { return status_.value_or(-1); }
  double elapsed() const { return elapsed_; }
  CpuTimes cpu() const { return cpu_; }
  long peak_kb() const { return peak_kb_; }

 private:
  pid_t pid_ = -1;
  Clock::time_point start_;
  std::optional<int> status_;
  double elapsed_ = 0;
  CpuTimes cpu_;
  long peak_kb_ = 0;
};

// ---- Redis ----------------------------------------------------------------------------

struct RedisContextDeleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
struct RedisReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using RedisReply = std::unique_ptr<redisReply, RedisReplyDeleter>;

// A blocking hiredis connection that pipelines: for filling and checking Redis fast.
class RedisClient {
 public:
  explicit RedisClient(int port, std::chrono::milliseconds timeout = 10s)
      : RedisClient(port, "", timeout) {}
  // Through the server's unix socket when `unix_socket` is not empty (a TLS-only server).
  RedisClient(int port, const std::string& unix_socket, std::chrono::milliseconds timeout = 10s)
      : port_(port) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
    c_.reset(unix_socket.empty() ? redisConnectWithTimeout("127.0.0.1", port, tv)
                                 : redisConnectUnixWithTimeout(unix_socket.c_str(), tv));
    if (!c_ || c_->err) throw std::runtime_error("redis connect: " + error());
    redisSetTimeout(c_.get(), tv);
  }
  redisContext* get() const { return c_.get(); }

  void append(const std::vector<std::string>& argv) {
    std::vector<const char*> a;
    std::vector<size_t> l;
    for (const auto& s : argv) a.push_back(s.data()), l.push_back(s.size());
    if (redisAppendCommandArgv(c_.get(), static_cast<int>(a.size()), a.data(), l.data()) !=
        REDIS_OK)
      throw std::runtime_error("redis append: " + error());
    ++pending_;
  }
  // The next reply of what was appended; throws on an error reply.
  RedisReply reply() {
    void* r = nullptr;
    if (redisGetReply(c_.get(), &r) != REDIS_OK || r == nullptr)
      throw std::runtime_error("redis reply: " + error());
    --pending_;
    RedisReply rep(static_cast<redisReply*>(r));
    if (rep->type == REDIS_REPLY_ERROR) throw std::runtime_error("redis: " + std::string(rep->str));
    return rep;
  }
  RedisReply command(const std::vector<std::string>& argv) {
    append(argv);
    return reply();
  }
  void drain() {
    while (pending_ > 0) reply();
  }
  // SET prefix<i> value for i in [from, to), pipelined as MSETs.
  void fill(const std::string& prefix, long from, long to, const std::string& value = "cached") {
    std::vector<std::string> cmd{"MSET"};
    for (long i = from; i < to; ++i) {
      cmd.push_back(prefix + std::to_string(i));
      cmd.push_back(value);
      if (cmd.size() >= 2001) append(cmd), cmd.assign(1, "MSET");
      if (pending_ >= 64) drain();
    }
    if (cmd.size() > 1) append(cmd);
    drain();
  }
  // How many keys match a pattern (SCAN; fine for checks).
  long count(const std::string& pattern) {
    long n = 0;
    std::string cursor = "0";
    do {
      RedisReply r = command({"SCAN", cursor, "MATCH", pattern, "COUNT", "10000"});
      cursor.assign(r->element[0]->str, r->element[0]->len);
      n += static_cast<long>(r->element[1]->elements);
    } while (cursor != "0");
    return n;
  }

 private:
  std::string error() const {
    return "127.0.0.1:" + std::to_string(port_) + ": " + (c_ ? c_->errstr : "out of memory");
  }
  int port_;
  std::unique_ptr<redisContext, RedisContextDeleter> c_;
  int pending_ = 0;
};

// ---- PostgreSQL -----------------------------------------------------------------------

// One connection kept open (the harness opens one per call, which forks a backend each time
// and would add server CPU to the measurements).
class PgSession {
 public:
  explicit PgSession(const std::string& conninfo) : c_(pg::connect(conninfo)) {}
  void exec(const std::string& sql) { pg::exec(c_.get(), sql, "running SQL [" + sql + "]"); }
  std::string scalar(const std::string& sql) {
    pg::Result r = pg::exec(c_.get(), sql, "running SQL [" + sql + "]");
    if (PQntuples(r.get()) == 0 || PQgetisnull(r.get(), 0, 0)) return "";
    return PQgetvalue(r.get(), 0, 0);
  }
  PGconn* get() const { return c_.get(); }
  int backend_pid() const { return PQbackendPID(c_.get()); }

 private:
  pg::Conn c_;
};

// A session's backend is a child of the postmaster: its cutime/cstime grow by the CPU of
// every backend (walsenders included) that exits.
class ServerCpu {
 public:
  explicit ServerCpu(PgSession& s) : postmaster_(parent_pid(s.backend_pid())) {}
  double exited_backends() const { return proc_children_cpu(postmaster_).total(); }
  int postmaster() const { return postmaster_; }

 private:
  int postmaster_;
};

// Waits until no walsender is connected (its CPU is then in the postmaster's cutime).
inline void wait_no_walsender(PgSession& s) {
  for (int i = 0; i < 2000; ++i) {
    if (s.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'") == "0")
      break;
    std::this_thread::sleep_for(5ms);
  }
  std::this_thread::sleep_for(20ms);  // the postmaster reaps it
}

// PostgreSQL settings for benchmarks: room for many slots, no autovacuum or checkpoints
// disturbing a timed run.
inline std::vector<std::string> pg_settings() {
  return {"max_replication_slots = 64", "max_wal_senders = 32",    "autovacuum = off",
          "max_wal_size = 8GB",         "checkpoint_timeout = 1h", "shared_buffers = 256MB",
          "wal_sender_timeout = 60s"};
}

// The `tasks`-like table of the benchmarks: id, group_id (50 values), owner, status, a
// 128-byte payload, updated_at; `rows` rows.
inline std::string create_tasks_sql(const std::string& table, long rows, bool full_identity) {
  std::string sql = "CREATE TABLE " + table +
                    " (id int PRIMARY KEY, group_id int NOT NULL, owner text NOT NULL, "
                    "status text NOT NULL, payload text NOT NULL, "
                    "updated_at timestamptz NOT NULL DEFAULT now());\n"
                    "INSERT INTO " +
                    table +
                    " SELECT g, g % 50, 'user' || (g % 997), 'open', "
                    "repeat(md5(g::text), 4), now() FROM generate_series(1, " +
                    std::to_string(rows) + ") g;\n";
  if (full_identity) sql += "ALTER TABLE " + table + " REPLICA IDENTITY FULL;\n";
  return sql;
}

// The rule of the benchmarks: per row, delete the task and its group's key and bump the
// group's revision. `image`: "new." (what simple consumers do) or "" (both images).
inline std::string tasks_rule(const std::string& table, const std::string& image) {
  return "version: 1\nrules:\n  - name: " + table + "\n    table: " + table +
         "\n    delete: [\"task:${id}\", \"group:${" + image + "group_id}\"]\n" +
         "    bump: [\"rev:group:${" + image + "group_id}\"]\n";
}

// A pgbust config for the logical source.
inline std::string pgbust_config(const test::Postgres& pg, const test::Redis& redis,
                                 const std::string& slot, const std::string& publication,
                                 const std::string& rules_path, const std::string& extra = "") {
  return "postgres: {conninfo: \"" + pg.conninfo() + "\"}\n" +
         "sources:\n  logical: {slot: " + slot + ", publication: " + publication +
         ", create_slot: false, status_interval: 10s, state_dir: \"" +
         (std::filesystem::path(rules_path).parent_path() / "state").string() + "\"}\n" +
         "redis: {url: \"" + redis.url() + "\"}\nrules: " + rules_path +
         "\nstatus: {interval: 60s, listen: \"\"}\n" + "log: {level: warn}\n" + extra;
}

// "--name value" from argv, or `fallback`.
inline long arg_long(int argc, char** argv, const std::string& name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (name == argv[i]) return std::atol(argv[i + 1]);
  return fallback;
}
inline bool arg_flag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i)
    if (name == argv[i]) return true;
  return false;
}

inline std::string pg_bin(const std::string& tool) {
  std::string dir = "/usr/lib/postgresql/15/bin/";
  return ::access((dir + tool).c_str(), X_OK) == 0 ? dir + tool : tool;
}

}  // namespace pgbust::bench
