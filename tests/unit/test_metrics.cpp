// Prometheus registry: exact text exposition output, label escaping, histogram buckets.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "pgbust/ops/metrics.hpp"

using namespace pgbust::metrics;

TEST_CASE("metrics: counters and gauges render exactly, in registration order") {
  Registry r;
  Counter& tx = r.counter("pgbust_transactions_total", "Transactions applied.");
  Counter& ins = r.counter("pgbust_changes_total", "Changes seen, by table and operation.",
                           {{"table", "public.t"}, {"op", "insert"}});
  Counter& del = r.counter("pgbust_changes_total", "Changes seen, by table and operation.",
                           {{"table", "public.t"}, {"op", "delete"}});
  Gauge& lag = r.gauge("pgbust_replication_lag_bytes", "WAL not yet confirmed.");
  tx.inc();
  tx.inc(41);
  ins.inc(3);
  lag.set(1024);
  lag.add(-24);
  CHECK(&r.counter("pgbust_changes_total", "ignored", {{"table", "public.t"}, {"op", "insert"}}) ==
        &ins);
  CHECK(del.value() == 0);
  CHECK(r.render() ==
        "# HELP pgbust_transactions_total Transactions applied.\n"
        "# TYPE pgbust_transactions_total counter\n"
        "pgbust_transactions_total 42\n"
        "# HELP pgbust_changes_total Changes seen, by table and operation.\n"
        "# TYPE pgbust_changes_total counter\n"
        "pgbust_changes_total{table=\"public.t\",op=\"insert\"} 3\n"
        "pgbust_changes_total{table=\"public.t\",op=\"delete\"} 0\n"
        "# HELP pgbust_replication_lag_bytes WAL not yet confirmed.\n"
        "# TYPE pgbust_replication_lag_bytes gauge\n"
        "pgbust_replication_lag_bytes 1000\n");
}

TEST_CASE("metrics: label values and help text are escaped") {
  Registry r;
  r.counter("x_total", "a \\ b\nc \"q\"", {{"rule", "we\"ird\\na\nme"}}).inc();
  CHECK(r.render() ==
        "# HELP x_total a \\\\ b\\nc \"q\"\n"
        "# TYPE x_total counter\n"
        "x_total{rule=\"we\\\"ird\\\\na\\nme\"} 1\n");
}

TEST_CASE("metrics: value formatting") {
  struct Case {
    double v;
    const char* text;
  };
  const Case cases[] = {
      {0, "0"},
      {1, "1"},
      {0.5, "0.5"},
      {0.001, "0.001"},
      {-2.25, "-2.25"},
      {1e-9, "1e-09"},
      {123456789, "123456789"},
      {std::numeric_limits<double>::infinity(), "+Inf"},
      {-std::numeric_limits<double>::infinity(), "-Inf"},
      {std::nan(""), "NaN"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    CHECK(format_value(c.v) == c.text);
  }
}

TEST_CASE("metrics: histogram buckets are cumulative, with _sum and _count") {
  Registry r;
  Histogram& h = r.histogram("pgbust_commit_to_redis_seconds", "Commit to Redis latency.",
                             {0.25, 0.5, 1}, {{"source", "logical"}});
  for (double v : {0.125, 0.25, 0.375, 0.75, 2.0, 0.5}) h.observe(v);  // bounds are inclusive
  h.observe(std::nan(""));                                             // ignored
  CHECK(h.count() == 6);
  CHECK(r.render() ==
        "# HELP pgbust_commit_to_redis_seconds Commit to Redis latency.\n"
        "# TYPE pgbust_commit_to_redis_seconds histogram\n"
        "pgbust_commit_to_redis_seconds_bucket{source=\"logical\",le=\"0.25\"} 2\n"
        "pgbust_commit_to_redis_seconds_bucket{source=\"logical\",le=\"0.5\"} 4\n"
        "pgbust_commit_to_redis_seconds_bucket{source=\"logical\",le=\"1\"} 5\n"
        "pgbust_commit_to_redis_seconds_bucket{source=\"logical\",le=\"+Inf\"} 6\n"
        "pgbust_commit_to_redis_seconds_sum{source=\"logical\"} 4\n"
        "pgbust_commit_to_redis_seconds_count{source=\"logical\"} 6\n");
}

TEST_CASE("metrics: an empty unlabelled histogram with the latency buckets") {
  Registry r;
  r.histogram("lat_seconds", "L.", latency_buckets());
  std::string text = r.render();
  CHECK(text.find("lat_seconds_bucket{le=\"0.001\"} 0\n") != std::string::npos);
  CHECK(text.find("lat_seconds_bucket{le=\"0.0025\"} 0\n") != std::string::npos);
  CHECK(text.find("lat_seconds_bucket{le=\"30\"} 0\n") != std::string::npos);
  CHECK(text.find("lat_seconds_bucket{le=\"+Inf\"} 0\n") != std::string::npos);
  CHECK(text.find("lat_seconds_sum 0\nlat_seconds_count 0\n") != std::string::npos);
}

TEST_CASE("metrics: on_render refreshes gauges before each scrape") {
  Registry r;
  Gauge& g = r.gauge("up", "Up.");
  int calls = 0;
  r.on_render([&] { g.set(++calls); });
  CHECK(r.render().ends_with("up 1\n"));
  CHECK(r.render().ends_with("up 2\n"));
}

TEST_CASE("metrics: invalid registrations are refused") {
  Registry r;
  r.counter("a_total", "A.");
  CHECK_THROWS_AS(r.gauge("a_total", "A."), std::invalid_argument);  // type clash
  CHECK_THROWS_AS(r.counter("1bad", "B."), std::invalid_argument);   // name
  CHECK_THROWS_AS(r.counter("b-c", "B."), std::invalid_argument);    // name
  CHECK_THROWS_AS(r.counter("c_total", "C.", {{"bad-label", "x"}}), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("c_total", "C.", {{"__x", "x"}}), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("c_total", "C.", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("h", "H.", {1, 2}, {{"le", "x"}}), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("h", "H.", {2, 1}), std::invalid_argument);
  r.histogram("h", "H.", {1, 2});
  CHECK_THROWS_AS(r.histogram("h", "H.", {1, 3}), std::invalid_argument);  // other buckets
  CHECK_THROWS_AS(r.counter("h_count", "C."), std::invalid_argument);      // histogram's series
  CHECK(r.counter("ns:name_total", "colons are allowed").value() == 0);
}
