// Benchmark: live latency from COMMIT returning to the key being gone in Redis, with
// single-row transactions at a steady rate (500/s, then doubling while the machine keeps
// up). A Redis subscriber to keyspace notifications (`del` events) timestamps each deletion
// as it happens, so nothing polls. Prints p50/p95/p99/max per rate and whether the lag
// stayed bounded; never fails on time.
//
// Usage: bench_latency [--seconds N] [--max-rate N] [--rate N]
//        bench_latency --pattern-heavy [--keys N] [--rate N] [--seconds N] [--runs N]
//   --rate N   only that rate (repeated --rate: each in turn), e.g. to look at one load
//   --pattern-heavy  issue 14: N keys (default 1M, DEBUG POPULATE) in Redis and 1% of the
//              transactions also update a row whose rule widens to a pattern (old value not
//              in the WAL), so a keyspace pass over every key runs while the exact keys of
//              the other transactions are measured; each run is a baseline step (no
//              widening, same keyspace) then the pattern-heavy step. Prints p50/p99 of both
//              per run and the medians over the runs. PGBUST_BENCH_BINARY=path measures
//              another pgbust build (e.g. main's) the same way.
#include <poll.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>

#include "bench.hpp"

using namespace pgbust::bench;

namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// Subscribes to `del` keyspace events and records when each "task:<id>" went.
class DelWatcher {
 public:
  DelWatcher(int port, std::size_t max_id) : seen_(max_id + 1), client_(port, 200ms) {
    RedisReply r = client_.command({"SUBSCRIBE", "__keyevent@0__:del"});
    thread_ = std::thread([this] { run(); });
  }
  ~DelWatcher() {
    stop_ = true;
    thread_.join();
  }
  void reset(std::size_t n) {
    for (std::size_t i = 0; i <= n && i < seen_.size(); ++i) seen_[i].store(0);
    count_.store(0);
  }
  std::int64_t seen(std::size_t id) const { return seen_[id].load(std::memory_order_acquire); }
  long count() const { return count_.load(); }

 private:
  void run() {
    redisContext* c = client_.get();
    while (!stop_) {
      pollfd p{c->fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      std::int64_t t = now_ns();
      if (redisBufferRead(c) != REDIS_OK) {
        std::fprintf(stderr, "keyspace subscriber: %s\n", c->errstr);
        return;
      }
      for (;;) {
        void* raw = nullptr;
        if (redisGetReplyFromReader(c, &raw) != REDIS_OK || raw == nullptr) break;
        record(RedisReply(static_cast<redisReply*>(raw)), t);
      }
    }
  }

  void record(RedisReply r, std::int64_t t) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    std::string_view key(r->element[2]->str, r->element[2]->len);
    if (!key.starts_with("task:")) return;
    std::size_t id = std::strtoul(std::string(key.substr(5)).c_str(), nullptr, 10);
    if (id < seen_.size() && seen_[id].load() == 0) {
      seen_[id].store(t, std::memory_order_release);
      ++count_;
    }
  }

  std::vector<std::atomic<std::int64_t>> seen_;
  std::atomic<long> count_{0};
  std::atomic<bool> stop_{false};
  RedisClient client_;
  std::thread thread_;
};

struct StepResult {
  double target_rate = 0, achieved_rate = 0;
  long txns = 0, missing = 0;
  std::vector<double> latencies_ms;  // sorted
  double early_p50 = 0, late_p50 = 0;
  double pgbust_cpu_share = 0;     // of one core, during the step
  double walsender_cpu_share = 0;  // the walsender decoding for pgbust, same
  double machine_busy = 0;         // of all CPUs together (2 CPUs: up to 200%)
  double walsender_behind_kb = 0;  // max WAL not yet sent by the walsender (PostgreSQL side)
  double pgbust_behind_kb = 0;     // max WAL sent but not yet confirmed by pgbust
  long stalls = 0;                 // transactions that took over 50 ms
  double first_stall_s = 0;        // when the first of them committed, from the step start
  bool bounded = false;
};

// One step: `rate` single-row UPDATE transactions per second for `seconds`, spread over
// enough connections to reach it; ids 1..n, whose task:<id> keys are set beforehand.
// `widen`: every 100th transaction also updates table `wide`, whose rule widens to a pattern.
StepResult step(Postgres& pg, Redis& redis, DelWatcher& watcher, int pgbust_pid, int walsender_pid,
                double rate, double seconds, long rows, bool widen = false) {
  StepResult res;
  res.target_rate = rate;
  // One transaction per row (a key is deleted once): at most `rows` per step.
  const long n = std::min(static_cast<long>(rate * seconds), rows);
  res.txns = n;
  {
    RedisClient r(redis.port());
    r.fill("task:", 1, n + 1);
  }
  watcher.reset(static_cast<std::size_t>(n));
  const int conns = std::clamp(static_cast<int>(std::ceil(rate / 1500.0)), 1, 8);
  std::vector<std::int64_t> committed(static_cast<std::size_t>(n) + 1, 0);
  std::vector<std::unique_ptr<PgSession>> sessions;
  for (int c = 0; c < conns; ++c) {
    sessions.push_back(std::make_unique<PgSession>(pg.conninfo()));
    sessions.back()->exec("SET synchronous_commit = on");  // COMMIT returns once flushed
    pgbust::pg::Result p(PQprepare(sessions.back()->get(), "upd",
                                   "UPDATE tasks SET status = 'live', updated_at = now() "
                                   "WHERE id = $1",
                                   1, nullptr));
    if (PQresultStatus(p.get()) != PGRES_COMMAND_OK)
      throw std::runtime_error(PQerrorMessage(sessions.back()->get()));
    if (widen) {
      pgbust::pg::Result w(PQprepare(sessions.back()->get(), "upd_wide",
                                     "WITH w AS (UPDATE wide SET grp = grp WHERE id = 1) "
                                     "UPDATE tasks SET status = 'live', updated_at = now() "
                                     "WHERE id = $1",
                                     1, nullptr));
      if (PQresultStatus(w.get()) != PGRES_COMMAND_OK)
        throw std::runtime_error(PQerrorMessage(sessions.back()->get()));
    }
  }
  // Where a backlog sits, sampled every 20 ms: WAL the walsender has not sent yet, and WAL
  // sent but not yet confirmed by pgbust (applied in Redis; confirmations go out at most
  // every 200 ms while work is in flight, so up to ~200 ms of WAL is normal there).
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {
    PgSession s(pg.conninfo());
    const std::string q =
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn), "
        "pg_wal_lsn_diff(sent_lsn, flush_lsn) FROM pg_stat_replication "
        "WHERE pid = " +
        std::to_string(walsender_pid);
    while (sampling) {
      pgbust::pg::Result r = pgbust::pg::exec(s.get(), q, "sampling pg_stat_replication");
      if (PQntuples(r.get()) == 1) {
        res.walsender_behind_kb =
            std::max(res.walsender_behind_kb, std::atof(PQgetvalue(r.get(), 0, 0)) / 1024);
        res.pgbust_behind_kb =
            std::max(res.pgbust_behind_kb, std::atof(PQgetvalue(r.get(), 0, 1)) / 1024);
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  const double cpu0 = proc_runtime(pgbust_pid), wal0 = proc_runtime(walsender_pid);
  const MachineCpu m0 = machine_cpu();
  const auto start = Clock::now() + 20ms;
  const auto interval = std::chrono::duration<double>(1.0 / rate);
  std::vector<std::thread> loaders;
  for (int c = 0; c < conns; ++c) {
    loaders.emplace_back([&, c] {
      PGconn* conn = sessions[static_cast<std::size_t>(c)]->get();
      for (long id = 1 + c; id <= n; id += conns) {
        auto due = start + std::chrono::duration_cast<Clock::duration>(interval * (id - 1));
        std::this_thread::sleep_until(due);
        std::string v = std::to_string(id);
        const char* params[] = {v.c_str()};
        const char* stmt = widen && id % 100 == 0 ? "upd_wide" : "upd";
        pgbust::pg::Result r(PQexecPrepared(conn, stmt, 1, params, nullptr, nullptr, 0));
        committed[static_cast<std::size_t>(id)] = now_ns();
        if (PQresultStatus(r.get()) != PGRES_COMMAND_OK)
          std::fprintf(stderr, "update failed: %s", PQerrorMessage(conn));
      }
    });
  }
  for (auto& t : loaders) t.join();
  std::int64_t first = committed[1], last = 0;
  for (long id = 1; id <= n; ++id) {
    first = std::min(first, committed[static_cast<std::size_t>(id)]);
    last = std::max(last, committed[static_cast<std::size_t>(id)]);
  }
  for (int i = 0; i < 1500 && watcher.count() < n; ++i) std::this_thread::sleep_for(10ms);
  sampling = false;
  sampler.join();
  const double busy_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  res.pgbust_cpu_share = (proc_runtime(pgbust_pid) - cpu0) / busy_seconds;
  res.walsender_cpu_share = (proc_runtime(walsender_pid) - wal0) / busy_seconds;
  res.machine_busy = (machine_cpu().busy - m0.busy) / busy_seconds;
  res.achieved_rate = n > 1 ? static_cast<double>(n - 1) / ((last - first) / 1e9) : 0;

  std::vector<double> early, late;
  for (long id = 1; id <= n; ++id) {
    std::int64_t seen = watcher.seen(static_cast<std::size_t>(id));
    if (seen == 0) {
      ++res.missing;
      continue;
    }
    // The walsender can send the commit before COMMIT's reply reaches the client: 0 then.
    double ms = std::max<std::int64_t>(0, seen - committed[static_cast<std::size_t>(id)]) / 1e6;
    res.latencies_ms.push_back(ms);
    if (ms > 50 && res.stalls++ == 0)
      res.first_stall_s = (committed[static_cast<std::size_t>(id)] - first) / 1e9;
    if (id <= n / 5) early.push_back(ms);
    if (id > n - n / 5) late.push_back(ms);
  }
  std::sort(res.latencies_ms.begin(), res.latencies_ms.end());
  res.early_p50 = median(early);
  res.late_p50 = median(late);
  // Bounded: nothing lost, the end of the step not further behind than its start, and not
  // already far behind at the start (a backlog built up in the first fifth).
  res.bounded = res.missing == 0 &&
                res.late_p50 <= std::max(2 * res.early_p50, res.early_p50 + 2) &&
                res.early_p50 < 100;
  return res;
}

}  // namespace

// Issue 14: exact keys' latency while widened patterns make keyspace passes over many keys.
int pattern_heavy(int argc, char** argv) {
  const double seconds = static_cast<double>(arg_long(argc, argv, "--seconds", 5));
  const double rate = static_cast<double>(arg_long(argc, argv, "--rate", 500));
  const long keys = arg_long(argc, argv, "--keys", 1000000);
  const long runs = arg_long(argc, argv, "--runs", 3);
  Postgres pg(pg_settings());
  Redis redis;
  TempDir dir;
  const long rows = 200000;
  pg.exec(create_tasks_sql("tasks", rows, false));
  pg.exec(
      "CREATE TABLE wide (id int PRIMARY KEY, grp int NOT NULL); INSERT INTO wide VALUES "
      "(1, 1);");
  // REPLICA IDENTITY DEFAULT: an update's old grp is not in the WAL, so the rule widens to
  // the pattern wide:*:x (and deletes wide:1:x exactly).
  auto rules = dir.write("tasks.yaml", tasks_rule("tasks", "new.") +
                                           "  - name: wide\n    table: wide\n"
                                           "    delete: \"wide:${grp}:x\"\n");
  auto config =
      dir.write("pgbust.yaml", pgbust_config(pg, redis, "lat", "pub_cols", rules.string()));
  auto setup = pgbust::test::run(
      {pgbust::test::pgbust_binary(), "setup", "--config", config.string(), "--apply"});
  if (setup.exit_code != 0)
    throw std::runtime_error("pgbust setup --apply failed:\n" + setup.output);
  {
    RedisClient r(redis.port());
    r.command({"CONFIG", "SET", "notify-keyspace-events", "Eg"});
    r.command({"DEBUG", "POPULATE", std::to_string(keys), "pop"});
  }
  DelWatcher watcher(redis.port(), rows);
  Daemon d({"run", "--config", config.string()});
  bool streaming = pgbust::test::eventually(
      [&] {
        return pg.scalar("SELECT active::text FROM pg_replication_slots WHERE slot_name = 'lat'") ==
               std::optional<std::string>("true");
      },
      30s);
  if (!streaming) throw std::runtime_error("pgbust did not start streaming:\n" + d.output());
  const int walsender =
      std::stoi(pg.scalar("SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'lat'")
                    .value_or("0"));
  step(pg, redis, watcher, d.pid(), walsender, 200, 1, rows);  // warm up
  std::printf(
      "pattern-heavy live latency (issue 14): %ld keys in Redis, %.0f tx/s for %.0f s; "
      "COMMIT -> exact key gone; baseline: no widening; heavy: 1%% of transactions also "
      "widen to a pattern over the whole keyspace\n",
      keys, rate, seconds);
  std::printf("  %4s %10s %10s %10s %10s %10s %10s %9s\n", "run", "base p50", "base p99",
              "heavy p50", "heavy p99", "heavy max", "missing", "dbsize");
  std::vector<double> base99, heavy99, base50, heavy50;
  for (long run = 1; run <= runs; ++run) {
    StepResult b = step(pg, redis, watcher, d.pid(), walsender, rate, seconds, rows, false);
    StepResult h = step(pg, redis, watcher, d.pid(), walsender, rate, seconds, rows, true);
    base50.push_back(percentile(b.latencies_ms, 50));
    base99.push_back(percentile(b.latencies_ms, 99));
    heavy50.push_back(percentile(h.latencies_ms, 50));
    heavy99.push_back(percentile(h.latencies_ms, 99));
    RedisClient r(redis.port());
    RedisReply size = r.command({"DBSIZE"});
    std::printf("  %4ld %10.3f %10.3f %10.3f %10.3f %10.3f %10ld %9lld\n", run, base50.back(),
                base99.back(), heavy50.back(), heavy99.back(),
                h.latencies_ms.empty() ? 0.0 : h.latencies_ms.back(), b.missing + h.missing,
                size->integer);
    std::fflush(stdout);
  }
  std::printf(
      "median over %ld runs: baseline p50 %.3f ms p99 %.3f ms; pattern-heavy p50 %.3f ms "
      "p99 %.3f ms\n",
      runs, median(base50), median(base99), median(heavy50), median(heavy99));
  d.signal(SIGTERM);
  d.wait(30s);
  return 0;
}

int main(int argc, char** argv) try {
  if (arg_flag(argc, argv, "--pattern-heavy")) return pattern_heavy(argc, argv);
  const double seconds = static_cast<double>(arg_long(argc, argv, "--seconds", 5));
  const double max_rate = static_cast<double>(arg_long(argc, argv, "--max-rate", 32000));
  Postgres pg(pg_settings());
  Redis redis;
  TempDir dir;
  const long rows = 200000;
  pg.exec(create_tasks_sql("tasks", rows, false));
  auto rules = dir.write("tasks.yaml", tasks_rule("tasks", "new."));
  auto config =
      dir.write("pgbust.yaml", pgbust_config(pg, redis, "lat", "pub_cols", rules.string()));
  auto setup = pgbust::test::run(
      {pgbust::test::pgbust_binary(), "setup", "--config", config.string(), "--apply"});
  if (setup.exit_code != 0)
    throw std::runtime_error("pgbust setup --apply failed:\n" + setup.output);
  {
    RedisClient r(redis.port());
    r.command({"CONFIG", "SET", "notify-keyspace-events", "Eg"});
  }
  DelWatcher watcher(redis.port(), rows);
  Daemon d({"run", "--config", config.string()});
  bool streaming = pgbust::test::eventually(
      [&] {
        return pg.scalar("SELECT active::text FROM pg_replication_slots WHERE slot_name = 'lat'") ==
               std::optional<std::string>("true");
      },
      30s);
  if (!streaming) throw std::runtime_error("pgbust did not start streaming:\n" + d.output());
  const int walsender =
      std::stoi(pg.scalar("SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'lat'")
                    .value_or("0"));
  // Warm up: a short step so connections and caches are in place.
  step(pg, redis, watcher, d.pid(), walsender, 200, 1, rows);

  std::printf(
      "live latency: single-row UPDATE transactions (synchronous_commit on), COMMIT "
      "returned -> key gone in Redis (keyspace notification), %.0f s per rate\n",
      seconds);
  std::printf(
      "  (CPU during the step, 100%% = one core: pgbust, the walsender decoding for it, "
      "and the whole machine with %ld CPUs)\n",
      ::sysconf(_SC_NPROCESSORS_ONLN));
  std::printf(
      "  (behind: the most WAL, in kB, not yet sent by the walsender / sent and not yet "
      "confirmed by pgbust)\n");
  std::printf("  %8s %9s %7s %8s %8s %8s %8s %9s %11s %9s %15s %7s  %s\n", "target/s", "achieved",
              "txns", "p50 ms", "p95 ms", "p99 ms", "max ms", "pgbust %", "walsender %",
              "machine %", "behind wal/pgb", "missing", "lag");
  std::vector<StepResult> results;
  // Doubling from 500/s; after the first rate that is not sustained, one step between it and
  // the last sustained one.
  double rate = 500, last_good = 0;
  bool refined = false;
  std::vector<double> fixed;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--rate") fixed.push_back(std::atof(argv[i + 1]));
  std::size_t next_fixed = 0;
  if (!fixed.empty()) rate = fixed[next_fixed++];
  while (rate <= max_rate) {
    StepResult r = step(pg, redis, watcher, d.pid(), walsender, rate, seconds, rows);
    const auto& l = r.latencies_ms;
    std::printf(
        "  %8.0f %9.0f %7ld %8.3f %8.3f %8.3f %8.3f %8.0f%% %10.0f%% %8.0f%% %7.0f/%-7.0f "
        "%7ld  %s (p50 first/last fifth %.3f/%.3f ms)\n",
        r.target_rate, r.achieved_rate, r.txns, percentile(l, 50), percentile(l, 95),
        percentile(l, 99), l.empty() ? 0.0 : l.back(), 100 * r.pgbust_cpu_share,
        100 * r.walsender_cpu_share, 100 * r.machine_busy, r.walsender_behind_kb,
        r.pgbust_behind_kb, r.missing,
        r.bounded                                        ? "bounded"
        : r.walsender_behind_kb > 4 * r.pgbust_behind_kb ? "GROWING at the walsender"
                                                         : "GROWING",
        r.early_p50, r.late_p50);
    std::fflush(stdout);
    results.push_back(std::move(r));
    const StepResult& last = results.back();
    // Sustained: the loaders reached the rate (else the database is the limit) and pgbust
    // kept up.
    const bool sustained = last.achieved_rate >= 0.9 * last.target_rate && last.bounded;
    if (last.stalls > 0)
      std::printf(
          "           %ld transactions over 50 ms, the first committed %.3f s into the "
          "step\n",
          last.stalls, last.first_stall_s);
    if (!fixed.empty()) {
      if (next_fixed == fixed.size()) break;
      rate = fixed[next_fixed++];
    } else if (sustained && !refined) {
      last_good = rate;
      rate *= 2;
    } else if (!sustained && !refined && last_good > 0) {
      refined = true;
      rate = (last_good + rate) / 2;
    } else {
      break;
    }
  }
  const StepResult* best = nullptr;
  for (const auto& r : results)
    if (r.bounded && (!best || r.achieved_rate > best->achieved_rate)) best = &r;
  double p99_500 = results.empty() ? 0 : percentile(results.front().latencies_ms, 99);
  std::printf("\ntargets: p99 <= 1 ms at 500 tx/s: %.3f ms %s\n", p99_500,
              p99_500 <= 1.0 ? "met" : "NOT MET");
  if (best) {
    double p99 = percentile(best->latencies_ms, 99);
    std::printf(
        "         highest sustained rate with bounded lag: %.0f tx/s, p99 %.3f ms "
        "(<= 10 ms: %s)\n",
        best->achieved_rate, p99, p99 <= 10.0 ? "met" : "NOT MET");
  }
  std::printf("pgbust peak RSS over the run: %ld MB (steady target <= 32 MB)\n",
              peak_rss_kb(d.pid()) / 1024);
  d.signal(SIGTERM);
  d.wait(30s);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_latency: %s\n", e.what());
  return 1;
}
