// Benchmark: pgbust's memory through one transaction that updates 1M rows (all columns
// published). Samples RSS while it streams, prints the peak (VmHWM) next to the idle figure,
// and checks that everything was applied: past limits.max_keys_per_transaction the rule
// widens to patterns, so every task:* and group:* key must be gone. Never fails on time.
//
// Usage: bench_memory [--rows N]
#include <csignal>
#include <cstdio>

#include "bench.hpp"

using namespace pgbust::bench;

int main(int argc, char** argv) try {
  const long rows = arg_long(argc, argv, "--rows", 1000000);
  Postgres pg(pg_settings());
  Redis redis;
  TempDir dir;
  PgSession mon(pg.conninfo());
  auto t0 = Clock::now();
  pg.exec(create_tasks_sql("tasks", rows, false) + "CREATE PUBLICATION pub_all FOR TABLE tasks;");
  mon.exec("SELECT pg_create_logical_replication_slot('mem', 'pgoutput')");
  auto rules = dir.write("tasks.yaml", tasks_rule("tasks", "new."));
  auto config =
      dir.write("pgbust.yaml", pgbust_config(pg, redis, "mem", "pub_all", rules.string()));
  {
    RedisClient r(redis.port());
    r.fill("task:", 1, rows + 1);
    r.fill("group:", 0, 50);
    r.command({"SET", "other:keep", "1"});
  }
  std::printf("memory benchmark: one transaction updating %ld rows (setup %.1f s)\n", rows,
              seconds_since(t0));

  Daemon d({"run", "--config", config.string()});
  bool streaming = pgbust::test::eventually(
      [&] {
        return mon.scalar(
                   "SELECT active::text FROM pg_replication_slots WHERE slot_name = 'mem'") ==
               "true";
      },
      30s);
  if (!streaming) throw std::runtime_error("pgbust did not start streaming:\n" + d.output());
  std::this_thread::sleep_for(500ms);
  const long idle_kb = rss_kb(d.pid());

  auto t1 = Clock::now();
  mon.exec("UPDATE tasks SET status = 'bulk', updated_at = now()");
  const double update_s = seconds_since(t1);
  const std::string end = mon.scalar("SELECT pg_current_wal_insert_lsn()");
  const std::string done = "SELECT confirmed_flush_lsn >= '" + end +
                           "'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'mem'";
  long max_rss_kb = 0;
  double cpu = 0;
  while (mon.scalar(done) != "t") {
    if (!d.running() || seconds_since(t1) > 900)
      throw std::runtime_error("pgbust did not apply the transaction:\n" + d.output());
    max_rss_kb = std::max(max_rss_kb, rss_kb(d.pid()));
    std::this_thread::sleep_for(20ms);
  }
  const double total_s = seconds_since(t1);
  cpu = proc_runtime(d.pid());
  const long peak_kb = peak_rss_kb(d.pid());

  RedisClient r(redis.port());
  long tasks = r.count("task:*"), groups = r.count("group:*");
  bool keep = r.command({"EXISTS", "other:keep"})->integer == 1;
  std::printf(
      "  UPDATE of %ld rows committed in %.1f s; pgbust confirmed it %.1f s after the "
      "UPDATE started (walsender decoding included)\n",
      rows, update_s, total_s);
  std::printf(
      "  pgbust RSS: idle %ld MB, sampled max %ld MB, peak (VmHWM) %ld MB; CPU %.2f s "
      "(%.2f us/row)\n",
      idle_kb / 1024, max_rss_kb / 1024, peak_kb / 1024, cpu, cpu * 1e6 / rows);
  std::printf("  Redis afterwards: task:* left %ld, group:* left %ld, other:keep %s -> %s\n", tasks,
              groups, keep ? "kept" : "DELETED",
              tasks == 0 && groups == 0 && keep ? "everything applied" : "NOT APPLIED");
  std::printf("targets: peak RSS <= 64 MB through the transaction: %s; idle <= 32 MB: %s\n",
              peak_kb <= 64 * 1024 ? "met" : "NOT MET", idle_kb <= 32 * 1024 ? "met" : "NOT MET");
  d.signal(SIGTERM);
  d.wait(30s);
  if (tasks != 0 || groups != 0 || !keep) {
    std::fprintf(stderr, "bench_memory: the transaction was not fully applied\n%s",
                 d.output().c_str());
    return 1;
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_memory: %s\n", e.what());
  return 1;
}
