// Benchmark: catch-up after a burst written while nothing consumed it. pg_recvlogical
// (pgoutput to /dev/null) and pgbust (the real daemon applying invalidations to a real Redis)
// each replay the same WAL from their own copy of a slot created before the burst; REPLICA
// IDENTITY DEFAULT with and without a publication column list, and a REPLICA IDENTITY FULL
// copy of the table. Prints medians; never fails on time (only on wrong results).
//
// Usage: bench_catchup [--runs N] [--rows N] [--txns N] [--rows-per-txn N] [--variant N]
//                      [--attach "COMMAND"] [--tls]
//   --variant N   only the N-th variant (1: DEFAULT all columns, 2: column list, 3: FULL)
//   --tls         also run pgbust against a TLS-only redis-server (rediss://, verify: full)
//                 for each variant, and print its rate as a ratio of plain TCP in the same run
//   --cluster     also run pgbust against a 3-master Redis Cluster (redis+cluster://) for
//                 each variant, and print its rate as a ratio of the single node
//   --attach C    for each pgbust run, start `C -p PID` once pgbust runs and stop it (SIGINT)
//                 when it has caught up: e.g. --attach "perf record -g -o /tmp/pgbust.data"
//                 or --attach "strace -c -f -o /tmp/pgbust.strace"
#include <csignal>
#include <cstdio>
#include <map>

#include "../integration/redis_cluster.hpp"
#include "bench.hpp"
#include "pgbust/redis/cluster.hpp"

using namespace pgbust::bench;

namespace {

struct Variant {
  std::string label;        // what the table shows
  std::string table;        // tasks | tasks_full
  std::string publication;  // the consumers replay through this publication
  std::string template_slot;
  std::string endpos;  // the burst's end (pg_current_wal_insert_lsn after its last commit)
  std::string rules;   // pgbust rules file
};

struct Sample {
  double wall = 0;  // s, process start to burst end consumed (pgbust: confirmed)
  double cpu = 0;   // s, consumer user+sys
  double user = 0, sys = 0;
  double server_cpu = 0;  // s, the walsender (and any backend that exited meanwhile)
  long peak_kb = 0;       // consumer peak RSS
};

struct Bench {
  Postgres pg{pg_settings()};
  Redis redis;
  std::unique_ptr<pgbust::test::TlsCerts> certs;  // --tls
  std::unique_ptr<Redis> tls_redis;
  Redis* target = &redis;                               // the Redis the next pgbust run applies to
  std::unique_ptr<pgbust::test::RedisCluster> cluster;  // --cluster
  bool on_cluster = false;  // the next pgbust run applies to the cluster

  // The cluster's masters, each with the keys of `prefix`from..to it serves.
  void cluster_fill(const std::string& prefix, long from, long to) {
    std::map<int, RedisClient> per;
    for (long i = from; i < to; ++i) {
      std::string key = prefix + std::to_string(i);
      int m = cluster->owner(pgbust::redis::key_slot(key));
      auto it = per.find(m);
      if (it == per.end())
        it = per.emplace(m, RedisClient(cluster->port(static_cast<std::size_t>(m)))).first;
      it->second.append({"SET", key, "cached"});
      if (i % 64 == 0) it->second.drain();
    }
    for (auto& [m, c] : per) c.drain();
  }
  long cluster_count(const std::string& pattern) {
    long n = 0;
    for (std::size_t m : cluster->masters()) n += RedisClient(cluster->port(m)).count(pattern);
    return n;
  }

  RedisClient client() const {
    bool tls = target == tls_redis.get() && tls_redis;
    return RedisClient(target->port(), tls ? target->unix_socket() : std::string());
  }
  TempDir dir;
  PgSession mon{pg.conninfo()};
  ServerCpu server{mon};
  long table_rows = 100000;
  int txns = 2000, rows_per_txn = 100;
  long changes() const { return static_cast<long>(txns) * rows_per_txn; }
  int slot_seq = 0;
  std::string attach;  // profiler command, "-p PID" appended

  // Writes txns transactions of rows_per_txn UPDATEs each; 10% of rows move to another
  // group. Returns the WAL insert position after the last commit.
  std::string burst(const std::string& table) {
    PgSession s(pg.conninfo());
    auto t0 = Clock::now();
    for (int t = 0; t < txns; ++t) {
      long from = static_cast<long>(t) * rows_per_txn % table_rows + 1;
      s.exec("UPDATE " + table + " SET status = 's" + std::to_string(t % 7) +
             "', updated_at = now(), group_id = CASE WHEN id % 10 = " + std::to_string(t % 10) +
             " THEN (group_id + 1) % 50 ELSE group_id END WHERE id BETWEEN " +
             std::to_string(from) + " AND " + std::to_string(from + rows_per_txn - 1));
    }
    std::string end = s.scalar("SELECT pg_current_wal_insert_lsn()");
    s.exec("CHECKPOINT");  // WAL flushed and dirty pages written before anything is timed
    std::printf("  burst on %s: %ld row UPDATEs in %d transactions, %.1f s, WAL %s .. %s\n",
                table.c_str(), changes(), txns, seconds_since(t0),
                pg.scalar("SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = "
                          "'tmpl_" +
                          table + "'")
                    .value_or("?")
                    .c_str(),
                end.c_str());
    return end;
  }

  std::string copy_slot(const Variant& v) {
    std::string slot = "run_" + std::to_string(++slot_seq);
    mon.exec("SELECT pg_copy_logical_replication_slot('" + v.template_slot + "', '" + slot + "')");
    return slot;
  }

  void drop_slot(const std::string& slot) {
    mon.exec("SELECT pg_drop_replication_slot('" + slot + "')");
  }

  Sample recvlogical(const Variant& v) {
    std::string slot = copy_slot(v);
    std::string log = (dir.path() / "pg_recvlogical.log").string();
    double server0 = server.exited_backends();
    Child c({pg_bin("pg_recvlogical"), "-d", pg.conninfo(), "-S", slot, "--start", "-E", v.endpos,
             "--no-loop", "-o", "proto_version=1", "-o", "publication_names=" + v.publication, "-f",
             "/dev/null"},
            log);
    if (!c.wait(600s) || c.status() != 0)
      throw std::runtime_error("pg_recvlogical failed (status " + std::to_string(c.status()) +
                               "):\n" + read_file(log));
    wait_no_walsender(mon);
    Sample s;
    s.wall = c.elapsed();
    s.user = c.cpu().user;
    s.sys = c.cpu().sys;
    s.cpu = c.cpu().total();
    s.peak_kb = c.peak_kb();
    s.server_cpu = server.exited_backends() - server0;
    drop_slot(slot);
    return s;
  }

  void fill_redis() {
    if (on_cluster) {
      for (std::size_t m : cluster->masters()) RedisClient(cluster->port(m)).command({"FLUSHALL"});
      cluster_fill("task:", 1, table_rows + 1);
      cluster_fill("group:", 0, 50);
      cluster->set("other:keep", "1");
      return;
    }
    RedisClient r = client();
    r.command({"FLUSHALL"});
    r.fill("task:", 1, table_rows + 1);
    r.fill("group:", 0, 50);
    r.command({"SET", "other:keep", "1"});
  }

  // Every key the rule should have removed is gone, every group's revision was bumped, and
  // an unrelated key survived.
  void verify_redis(const std::string& what) {
    long tasks = 0, groups = 0, revs = 0;
    bool keep = false;
    if (on_cluster) {
      tasks = cluster_count("task:*");
      groups = cluster_count("group:*");
      revs = cluster_count("rev:group:*");
      keep = cluster->exists("other:keep");
    } else {
      RedisClient r = client();
      tasks = r.count("task:*");
      groups = r.count("group:*");
      revs = r.count("rev:group:*");
      keep = r.command({"EXISTS", "other:keep"})->integer == 1;
    }
    long expect_tasks = changes() >= table_rows ? 0 : table_rows - changes();
    if (tasks != expect_tasks || groups != 0 || revs != 50 || !keep)
      throw std::runtime_error(
          what + ": Redis is not as the rule says: task:* " + std::to_string(tasks) +
          " left (expected " + std::to_string(expect_tasks) + "), group:* " +
          std::to_string(groups) + " left, rev:group:* " + std::to_string(revs) +
          " (expected 50), other:keep " + (keep ? "kept" : "deleted"));
  }

  Sample pgbust(const Variant& v) {
    fill_redis();
    std::string slot = copy_slot(v);
    std::string text = pgbust_config(pg, *target, slot, v.publication, v.rules);
    if (on_cluster) {
      std::string url = "url: \"" + target->url() + "\"";
      text.replace(text.find(url), url.size(), "url: \"" + cluster->url() + "\"");
    }
    if (target == tls_redis.get() && tls_redis) {
      std::string url = "url: \"" + target->url() + "\"";
      text.replace(text.find(url), url.size(),
                   url + ", tls: {ca_file: \"" + certs->file("ca.crt") + "\"}");
    }
    auto config = dir.write("pgbust-" + slot + ".yaml", text);
    double server0 = server.exited_backends();
    auto t0 = Clock::now();
    auto d = std::make_unique<Daemon>(std::vector<std::string>{"run", "--config", config.string()});
    std::unique_ptr<Child> profiler;
    if (!attach.empty())
      profiler = std::make_unique<Child>(
          std::vector<std::string>{"/bin/sh", "-c",
                                   "exec " + attach + " -p " + std::to_string(d->pid())},
          (dir.path() / "attach.log").string());
    const std::string done = "SELECT confirmed_flush_lsn >= '" + v.endpos +
                             "'::pg_lsn FROM pg_replication_slots WHERE slot_name = '" + slot + "'";
    Sample s;
    for (;;) {
      if (mon.scalar(done) == "t") break;
      if (!d->running() || seconds_since(t0) > 600)
        throw std::runtime_error("pgbust did not catch up; output:\n" + d->output());
      std::this_thread::sleep_for(5ms);
    }
    s.wall = seconds_since(t0);
    CpuTimes ut = proc_cpu(d->pid());
    s.user = ut.user;
    s.sys = ut.sys;
    s.cpu = proc_runtime(d->pid());
    s.peak_kb = peak_rss_kb(d->pid());
    if (profiler) {
      ::kill(profiler->pid(), SIGINT);
      profiler->wait(60s);
      std::fputs(read_file((dir.path() / "attach.log").string()).c_str(), stdout);
    }
    d->signal(SIGTERM);
    d->wait(30s);
    d.reset();
    wait_no_walsender(mon);
    s.server_cpu = server.exited_backends() - server0;
    drop_slot(slot);
    verify_redis("pgbust on " + v.label);
    return s;
  }
};

double per_row_us(double seconds, long rows) {
  return seconds * 1e6 / static_cast<double>(rows);
}

}  // namespace

int main(int argc, char** argv) try {
  const int runs = static_cast<int>(arg_long(argc, argv, "--runs", 5));
  Bench b;
  b.table_rows = arg_long(argc, argv, "--rows", 100000);
  b.txns = static_cast<int>(arg_long(argc, argv, "--txns", 2000));
  b.rows_per_txn = static_cast<int>(arg_long(argc, argv, "--rows-per-txn", 100));
  const long only = arg_long(argc, argv, "--variant", 0);
  if (arg_flag(argc, argv, "--tls")) {
    b.certs = std::make_unique<pgbust::test::TlsCerts>();
    b.tls_redis = std::make_unique<Redis>(pgbust::test::RedisOptions{
        b.certs->file("server.crt"), b.certs->file("server.key"), b.certs->file("ca.crt")});
  }
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--attach") b.attach = argv[i + 1];
  if (arg_flag(argc, argv, "--cluster"))
    b.cluster = std::make_unique<pgbust::test::RedisCluster>(3, 0);
  std::printf(
      "catch-up benchmark: %ld-row tables, %d transactions x %d row UPDATEs, %d runs "
      "each (medians)\n",
      b.table_rows, b.txns, b.rows_per_txn, runs);

  auto t0 = Clock::now();
  b.pg.exec(create_tasks_sql("tasks", b.table_rows, false) +
            create_tasks_sql("tasks_full", b.table_rows, true) +
            "CREATE PUBLICATION pub_all FOR TABLE tasks;\n"
            "CREATE PUBLICATION pub_full FOR TABLE tasks_full;\n");
  b.mon.exec("VACUUM ANALYZE");
  auto rules = b.dir.write("tasks.yaml", tasks_rule("tasks", "new."));
  auto rules_full = b.dir.write("tasks_full.yaml", tasks_rule("tasks_full", ""));

  // `pgbust setup --apply` creates the column-list publication (only the columns the rules
  // read, plus the replica identity) and the template slot, before the burst.
  auto setup_config = b.dir.write(
      "setup.yaml", pgbust_config(b.pg, b.redis, "tmpl_tasks", "pub_cols", rules.string()));
  auto setup = pgbust::test::run(
      {pgbust::test::pgbust_binary(), "setup", "--config", setup_config.string(), "--apply"});
  if (setup.exit_code != 0)
    throw std::runtime_error("pgbust setup --apply failed:\n" + setup.output);
  std::string cols = b.mon.scalar(
      "SELECT array_to_string(attnames, ', ') FROM pg_publication_tables WHERE pubname = "
      "'pub_cols'");
  std::printf("  pgbust setup --apply: publication pub_cols FOR TABLE tasks (%s)\n", cols.c_str());
  std::string end_tasks = b.burst("tasks");
  b.mon.exec("SELECT pg_create_logical_replication_slot('tmpl_tasks_full', 'pgoutput')");
  std::string end_full = b.burst("tasks_full");
  std::printf("  setup took %.1f s\n\n", seconds_since(t0));

  std::vector<Variant> variants = {
      {"DEFAULT, all columns", "tasks", "pub_all", "tmpl_tasks", end_tasks, rules.string()},
      {"DEFAULT, column list", "tasks", "pub_cols", "tmpl_tasks", end_tasks, rules.string()},
      {"FULL, all columns", "tasks_full", "pub_full", "tmpl_tasks_full", end_full,
       rules_full.string()},
  };
  if (only > 0 && only <= static_cast<long>(variants.size()))
    variants = {variants[static_cast<std::size_t>(only - 1)]};
  std::map<std::string, std::vector<Sample>> recv, bust, bust_tls, bust_cluster;
  const long n = b.changes();
  for (int r = 1; r <= runs; ++r) {
    for (const Variant& v : variants) {
      Sample a = b.recvlogical(v);
      Sample p = b.pgbust(v);
      recv[v.label].push_back(a);
      bust[v.label].push_back(p);
      std::printf(
          "  run %d %-22s pg_recvlogical %7.0f rows/s | pgbust %7.0f rows/s, "
          "%.2f us CPU/row, peak RSS %ld MB | ratio %.2f\n",
          r, v.label.c_str(), n / a.wall, n / p.wall, per_row_us(p.cpu, n), p.peak_kb / 1024,
          a.wall / p.wall);
      if (b.tls_redis) {
        b.target = b.tls_redis.get();
        Sample t = b.pgbust(v);
        b.target = &b.redis;
        bust_tls[v.label].push_back(t);
        std::printf("  run %d %-22s pgbust over TLS %7.0f rows/s, %.2f us CPU/row | TLS/TCP %.2f\n",
                    r, v.label.c_str(), n / t.wall, per_row_us(t.cpu, n), p.wall / t.wall);
      }
      if (b.cluster) {
        b.on_cluster = true;
        Sample c = b.pgbust(v);
        b.on_cluster = false;
        bust_cluster[v.label].push_back(c);
        std::printf(
            "  run %d %-22s pgbust on a 3-master cluster %7.0f rows/s, %.2f us CPU/row | "
            "cluster/single %.2f\n",
            r, v.label.c_str(), n / c.wall, per_row_us(c.cpu, n), p.wall / c.wall);
      }
      std::fflush(stdout);
    }
  }

  auto med = [](const std::vector<Sample>& v, auto field) {
    std::vector<double> x;
    for (const Sample& s : v) x.push_back(field(s));
    return median(x);
  };
  std::printf(
      "\nmedians of %d runs, %ld row changes each (CPU in us per row change; "
      "walsender = the server process decoding for that consumer)\n",
      runs, n);
  std::printf("  %-22s %-15s %9s %8s %10s %9s %9s %8s\n", "variant", "consumer", "rows/s", "wall s",
              "CPU/row", "user/row", "wal-snd", "peak MB");
  double worst_ratio = 1e9, worst_cpu = 0;
  long worst_rss = 0;
  for (const Variant& v : variants) {
    const std::pair<const char*, std::vector<Sample>*> consumers[] = {
        {"pg_recvlogical", &recv[v.label]}, {"pgbust", &bust[v.label]}};
    for (const auto& [name, samples] : consumers) {
      std::printf(
          "  %-22s %-15s %9.0f %8.3f %10.2f %9.2f %9.2f %8.1f\n", v.label.c_str(), name,
          n / med(*samples, [](const Sample& s) { return s.wall; }),
          med(*samples, [](const Sample& s) { return s.wall; }),
          per_row_us(med(*samples, [](const Sample& s) { return s.cpu; }), n),
          per_row_us(med(*samples, [](const Sample& s) { return s.user; }), n),
          per_row_us(med(*samples, [](const Sample& s) { return s.server_cpu; }), n),
          med(*samples, [](const Sample& s) { return static_cast<double>(s.peak_kb); }) / 1024);
    }
  }
  std::printf("\n");
  for (const Variant& v : variants) {
    std::vector<double> ratios;
    for (std::size_t i = 0; i < recv[v.label].size(); ++i)
      ratios.push_back(recv[v.label][i].wall / bust[v.label][i].wall);
    double ratio = median(ratios);
    double cpu = per_row_us(med(bust[v.label], [](const Sample& s) { return s.cpu; }), n);
    long rss = 0;
    for (const Sample& s : bust[v.label]) rss = std::max(rss, s.peak_kb);
    if (v.table == "tasks") {
      worst_ratio = std::min(worst_ratio, ratio);
      worst_cpu = std::max(worst_cpu, cpu);
    }
    worst_rss = std::max(worst_rss, rss);
    std::printf("  %-22s pgbust / pg_recvlogical = %.2f (median of per-run ratios)\n",
                v.label.c_str(), ratio);
  }
  for (const Variant& v : variants) {
    if (!bust_tls.count(v.label)) continue;
    std::vector<double> ratios;
    for (std::size_t i = 0; i < bust_tls[v.label].size(); ++i)
      ratios.push_back(bust[v.label][i].wall / bust_tls[v.label][i].wall);
    double cpu_tcp = per_row_us(med(bust[v.label], [](const Sample& s) { return s.cpu; }), n);
    double cpu_tls = per_row_us(med(bust_tls[v.label], [](const Sample& s) { return s.cpu; }), n);
    std::printf(
        "  %-22s pgbust over TLS / plain TCP = %.2f (goal >= 0.80: %s), CPU %.2f vs %.2f us/row "
        "(TLS adds %.2f)\n",
        v.label.c_str(), median(ratios), median(ratios) >= 0.8 ? "met" : "NOT MET", cpu_tls,
        cpu_tcp, cpu_tls - cpu_tcp);
  }
  for (const Variant& v : variants) {
    if (!bust_cluster.count(v.label)) continue;
    std::vector<double> ratios;
    for (std::size_t i = 0; i < bust_cluster[v.label].size(); ++i)
      ratios.push_back(bust[v.label][i].wall / bust_cluster[v.label][i].wall);
    std::printf(
        "  %-22s pgbust on a 3-master cluster / single node = %.2f (%.0f vs %.0f rows/s), CPU "
        "%.2f vs %.2f us/row\n",
        v.label.c_str(), median(ratios),
        n / med(bust_cluster[v.label], [](const Sample& s) { return s.wall; }),
        n / med(bust[v.label], [](const Sample& s) { return s.wall; }),
        per_row_us(med(bust_cluster[v.label], [](const Sample& s) { return s.cpu; }), n),
        per_row_us(med(bust[v.label], [](const Sample& s) { return s.cpu; }), n));
  }
  if (recv.count("DEFAULT, all columns") && recv.count("DEFAULT, column list")) {
    double cols_gain = med(recv["DEFAULT, all columns"], [](const Sample& s) { return s.wall; }) /
                       med(recv["DEFAULT, column list"], [](const Sample& s) { return s.wall; });
    double cols_gain_bust =
        med(bust["DEFAULT, all columns"], [](const Sample& s) { return s.wall; }) /
        med(bust["DEFAULT, column list"], [](const Sample& s) { return s.wall; });
    std::printf("  column list speed-up: pg_recvlogical x%.2f, pgbust x%.2f\n", cols_gain,
                cols_gain_bust);
  }
  std::printf(
      "\ntargets (DEFAULT identity): ratio >= 0.90: %.2f %s; CPU <= 2.00 us/row: %.2f "
      "%s; peak RSS <= 32 MB: %ld MB %s\n",
      worst_ratio, worst_ratio >= 0.9 ? "met" : "NOT MET", worst_cpu,
      worst_cpu <= 2.0 ? "met" : "NOT MET", worst_rss / 1024,
      worst_rss <= 32 * 1024 ? "met" : "NOT MET");
  std::printf("total time %.0f s\n", seconds_since(t0));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_catchup: %s\n", e.what());
  return 1;
}
