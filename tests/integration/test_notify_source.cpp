// The NOTIFY source against a real PostgreSQL with the triggers `pgbust setup --notify
// --apply` creates: row changes, moves, oversized rows, malformed payloads, a killed listener,
// back-pressure; and end to end through the pipeline into a real Redis.
#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <sstream>
#include <thread>

#include "pgbust/core/resolver.hpp"
#include "pgbust/pg/async.hpp"
#include "pgbust/pg/libpq.hpp"
#include "pgbust/pipeline/pipeline.hpp"
#include "pgbust/redis/redis.hpp"
#include "pgbust/sources/notify.hpp"
#include "source_support.hpp"

using namespace pgbust;
using namespace pgbust::test_sources;
using namespace std::chrono_literals;

namespace {

const char* kRules = R"(
version: 1
rules:
  - name: orders
    table: orders
    delete: ["order:${id}", "customer_orders:${customer_id}"]
  - name: titles
    table: orders
    delete: ["title:${title|md5:8}"]
  - name: items
    table: items
    delete: ["item:${id}"]
)";

struct Fixture {
  test::Postgres pg;
  test::TempDir dir;
  std::shared_ptr<const rules::RuleSet> rules = load_rules(kRules);
  Loop loop;

  Fixture() {
    pg.exec(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, title text, note text);"
        "CREATE TABLE items (id int PRIMARY KEY, name text)");
    dir.write("rules.yaml", kRules);
    auto cfg =
        dir.write("pgbust.yaml", "postgres: {conninfo: \"" + pg.conninfo() +
                                     "\"}\n"
                                     "sources: {notify: {channels: [inval]}}\nrules: rules.yaml\n");
    auto r = test::run(
        {test::pgbust_binary(), "setup", "--notify", "--apply", "--config", cfg.string()});
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }

  // Sends `json` on the channel signed with the newest key in pgbust.notify_key (read as the
  // superuser), as the generated triggers do: payloads of any shape through verification.
  void notify_signed(const std::string& json) const {
    auto rows = pg.rows(
        "SELECT id, encode(secret, 'hex') FROM pgbust.notify_key ORDER BY created DESC LIMIT 1");
    REQUIRE(rows.size() == 1);
    notify::SigningKey key{rows[0][0], *notify::from_hex(rows[0][1])};
    pg.exec("SELECT pg_notify('inval', " + pg::quote_literal(notify::sign_payload(json, key)) +
            ")");
  }

  NotifyOptions options() const {
    NotifyOptions o;
    o.conninfo = pg.conninfo();
    o.notify.channels = {"inval"};
    o.backoff_min = 50ms;
    o.backoff_max = 200ms;
    return o;
  }
};

struct SourceFixture : Fixture {
  RecordingSink sink;
  std::unique_ptr<NotifySource> src;

  explicit SourceFixture(const std::string& on_gap = "widen") {
    auto o = options();
    o.notify.on_gap = on_gap;
    src = std::make_unique<NotifySource>(o, *rules, sink);
    loop.add(src.get());
    REQUIRE(drive(loop, [&] { return src->status().state == SourceState::Streaming; }));
  }
  ~SourceFixture() {
    loop.remove(src.get());
    src->close();
  }
  bool wait_txns(std::size_t n) {
    return drive(loop, [&] { return sink.txns.size() >= n; });
  }
};

}  // namespace

TEST_CASE("first start: LISTEN, then every rule table widens once (the gap policy)") {
  SourceFixture f;
  REQUIRE(f.wait_txns(1));
  CHECK(f.sink.txns[0].lines ==
        std::vector<std::string>{"widen public.items gap", "widen public.orders gap"});
  CHECK(f.src->counters().gaps == 1);
  CHECK(f.src->status().state == SourceState::Streaming);
  CHECK(f.src->status().reconnects == 0);
  CHECK(f.src->status().position == "#1");  // confirmed
}

TEST_CASE("on_gap: ignore only warns") {
  SourceFixture f("ignore");
  drive_for(f.loop, 300ms);
  CHECK(f.sink.txns.empty());
  CHECK(f.src->counters().gaps == 1);
  f.pg.exec("INSERT INTO items VALUES (1, 'x')");
  REQUIRE(f.wait_txns(1));
  CHECK(f.sink.txns[0].lines == std::vector<std::string>{"insert public.items new{id=1}"});
}

TEST_CASE("inserts, updates (a move sends both rows), deletes and truncate through the triggers") {
  SourceFixture f;
  REQUIRE(f.wait_txns(1));
  f.pg.exec("INSERT INTO orders VALUES (1, 10, 'a', 'not sent'), (2, NULL, 'b', 'x')");
  f.pg.exec("UPDATE orders SET customer_id = 20 WHERE id = 1");
  f.pg.exec("DELETE FROM orders WHERE id = 2");
  f.pg.exec("TRUNCATE orders");
  REQUIRE(f.wait_txns(6));
  // One transaction per notification, in commit order, positions increasing.
  std::vector<std::string> got;
  for (std::size_t i = 1; i < f.sink.txns.size(); ++i) {
    REQUIRE(f.sink.txns[i].lines.size() == 1);
    got.push_back(f.sink.txns[i].lines[0]);
  }
  CHECK(
      got ==
      std::vector<std::string>{
          "insert public.orders new{customer_id=10,id=1,title=a}",
          "insert public.orders new{customer_id=NULL,id=2,title=b}",
          "update public.orders old{customer_id=10,id=1,title=a} new{customer_id=20,id=1,title=a}",
          "delete public.orders old{customer_id=NULL,id=2,title=b}",
          "truncate public.orders",
      });
  CHECK(f.src->counters().notifications == 5);
  CHECK(f.src->status().changes == 5);
  CHECK(f.src->status().errors == 0);
}

TEST_CASE("a row too large for NOTIFY arrives with its key only; the rest is unknown") {
  SourceFixture f;
  REQUIRE(f.wait_txns(1));
  f.pg.exec("INSERT INTO orders VALUES (7, 3, repeat('t', 9000), NULL)");
  f.pg.exec("UPDATE orders SET title = 'short' WHERE id = 7");
  REQUIRE(f.wait_txns(3));
  CHECK(f.sink.txns[1].lines ==
        std::vector<std::string>{
            "insert public.orders new{customer_id=?oversized,id=7,title=?oversized}"});
  // The update's old row is still too large, the payload as a whole is: key only again.
  CHECK(f.sink.txns[2].lines ==
        std::vector<std::string>{
            "update public.orders old{customer_id=?oversized,id=7,title=?oversized} "
            "new{customer_id=?oversized,id=7,title=?oversized}"});
  CHECK(f.src->counters().oversized == 2);
  CHECK(f.src->status().last_error.find("too large for NOTIFY") != std::string::npos);
}

TEST_CASE(
    "malformed payloads sent by hand are counted, logged, and widened when the table is known") {
  SourceFixture f;
  REQUIRE(f.wait_txns(1));
  f.notify_signed("not json at all");
  f.notify_signed(R"({"table": "orders", "op": "upsert"})");
  f.notify_signed(R"({"table": "nope", "op": "insert", "new": {"id": "1"}})");
  f.pg.exec("INSERT INTO items VALUES (5, 'after')");
  REQUIRE(f.wait_txns(4));
  CHECK(f.src->counters().malformed == 2);
  CHECK(f.src->counters().unknown_tables == 1);
  // Not JSON: no table to widen, nothing delivered for it; the known table widens.
  CHECK(f.sink.txns[1].lines == std::vector<std::string>{"widen public.orders malformed"});
  // A table no rule names is still handed over (the pipeline's current rules decide).
  CHECK(f.sink.txns[2].lines == std::vector<std::string>{"insert public.nope new{id=1}"});
  CHECK(f.sink.txns[3].lines == std::vector<std::string>{"insert public.items new{id=5}"});
  auto st = f.src->status();
  CHECK(st.errors == 3);
  CHECK(st.state == SourceState::Streaming);
}

TEST_CASE("the listener's backend terminated: reconnect, widen for the gap, later changes flow") {
  SourceFixture f;
  REQUIRE(f.wait_txns(1));
  f.pg.exec("INSERT INTO items VALUES (1, 'before')");
  REQUIRE(f.wait_txns(2));
  auto killed = f.pg.scalar(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = "
      "'pgbust-notify'");
  CHECK(killed == "1");
  f.pg.exec("INSERT INTO items VALUES (2, 'lost while down?')");
  REQUIRE(drive(f.loop, [&] { return f.src->counters().gaps == 2; }));
  f.pg.exec("INSERT INTO items VALUES (3, 'after')");
  REQUIRE(drive(f.loop, [&] { return f.sink.has("insert public.items new{id=3}"); }));
  CHECK(f.sink.count("widen public.orders gap") == 2);
  CHECK(f.sink.count("widen public.items gap") == 2);
  CHECK(f.src->status().reconnects >= 1);
  CHECK(f.src->status().errors >= 1);
  CHECK(f.src->status().state == SourceState::Streaming);
  // The second widening came after the reconnect, i.e. after item 1 was delivered.
  auto lines = f.sink.lines();
  auto first_item = std::find(lines.begin(), lines.end(), "insert public.items new{id=1}");
  CHECK(std::count(first_item, lines.end(), "widen public.items gap") == 1);
}

TEST_CASE("back-pressure: nothing is read while the sink is full, and nothing is dropped") {
  SourceFixture f;
  REQUIRE(f.wait_txns(1));
  f.sink.accept = false;
  for (int i = 1; i <= 5; ++i)
    f.pg.exec("INSERT INTO items VALUES (" + std::to_string(i) + ", 'x')");
  drive_for(f.loop, 500ms);
  CHECK(f.sink.txns.size() == 1);
  CHECK(f.src->status().state == SourceState::Streaming);
  f.sink.accept = true;
  REQUIRE(f.wait_txns(6));
  for (int i = 1; i <= 5; ++i)
    CHECK(f.sink.txns[static_cast<std::size_t>(i)].lines ==
          std::vector<std::string>{"insert public.items new{id=" + std::to_string(i) + "}"});
}

TEST_CASE("stop_reading: no more transactions; close is idempotent") {
  SourceFixture f;
  REQUIRE(f.wait_txns(1));
  f.src->stop_reading();
  f.pg.exec("INSERT INTO items VALUES (1, 'x')");
  drive_for(f.loop, 300ms);
  CHECK(f.sink.txns.size() == 1);
  CHECK(f.src->status().state == SourceState::Stopped);
  f.src->close();
  f.src->close();
}

TEST_CASE("a server that is not there: backing off with the error, then streaming once it is") {
  Fixture f;
  f.pg.stop();
  RecordingSink sink;
  auto o = f.options();
  NotifySource src(o, *f.rules, sink);
  f.loop.add(&src);
  REQUIRE(drive(f.loop, [&] { return src.status().state == SourceState::BackingOff; }));
  CHECK_FALSE(src.status().last_error.empty());
  f.pg.start();
  REQUIRE(drive(f.loop, [&] { return src.status().state == SourceState::Streaming; }));
  REQUIRE(drive(f.loop, [&] { return !sink.txns.empty(); }));
  CHECK(sink.txns[0].lines.front() == "widen public.items gap");
  f.loop.remove(&src);
}

TEST_CASE("end to end: the right Redis keys disappear, moves invalidate both customers") {
  Fixture f;
  RedisPath to_redis(f.loop, f.rules);
  test::Redis& redis = to_redis.redis;
  redis::Target& target = to_redis.target;
  Pipeline& pipeline = to_redis.pipeline;
  NotifySource src(f.options(), *f.rules, pipeline);
  f.loop.add(&src);
  // The first start's gap widening reaches Redis as pattern deletes.
  redis.set("customer_orders:99", "stale from before pgbust started");
  REQUIRE(drive(f.loop, [&] {
    return src.status().state == SourceState::Streaming && pipeline.idle() &&
           pipeline.stats().transactions >= 1;
  }));
  CHECK_FALSE(redis.exists("customer_orders:99"));

  f.pg.exec("INSERT INTO orders VALUES (1, 10, 'a', NULL)");
  REQUIRE(drive(f.loop, [&] { return pipeline.stats().transactions >= 2 && pipeline.idle(); }));
  for (auto k : {"order:1", "customer_orders:10", "customer_orders:20", "customer_orders:30"})
    redis.set(k, "cached");
  f.pg.exec("UPDATE orders SET customer_id = 20 WHERE id = 1");
  REQUIRE(drive(f.loop, [&] { return !redis.exists("customer_orders:20"); }));
  CHECK_FALSE(redis.exists("customer_orders:10"));  // the old group as well
  CHECK_FALSE(redis.exists("order:1"));
  CHECK(redis.exists("customer_orders:30"));  // untouched
  f.loop.remove(&src);
  src.close();
  target.close();
}

TEST_CASE("schema and table names from a payload are quoted in log lines (no forged lines)") {
  // Issue 12: a newline in a payload's table name started a new, forged log line.
  std::ostringstream captured;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(captured)));
  struct Restore {
    std::shared_ptr<spdlog::logger> logger;
    ~Restore() { spdlog::set_default_logger(logger); }
  } restore{previous};

  SourceFixture f;
  REQUIRE(f.wait_txns(1));
  f.notify_signed(R"({"schema": "public", "table": "nope\ncritical: forged",
                      "op": "insert", "new": {"id": "1"}})");
  f.notify_signed(R"({"schema": "s\ncritical: forged", "table": "t", "op": "upsert"})");
  f.notify_signed(R"({"table": "orders", "op": "insert",
                      "new": {"id": "1", "x\ncritical: forged": [1]}})");
  REQUIRE(f.wait_txns(4));
  spdlog::default_logger()->flush();
  std::string log = captured.str();
  CAPTURE(log);
  CHECK(log.find("forged") != std::string::npos);              // the lines were written...
  CHECK(log.find("\ncritical: forged") == std::string::npos);  // ...but none was forged
  CHECK(log.find("\"public.nope\\ncritical: forged\"") != std::string::npos);
  CHECK(f.src->status().last_error.find('\n') == std::string::npos);
}

TEST_CASE("a NOTIFY gap keeps the status degraded until its widening is applied") {
  Fixture f;
  RecordingSink sink;
  sink.auto_confirm = false;  // as if Redis had not applied anything yet
  NotifySource src(f.options(), *f.rules, sink);
  f.loop.add(&src);
  REQUIRE(drive(f.loop, [&] { return sink.txns.size() >= 1; }));
  CHECK(src.status().state == SourceState::Streaming);
  CHECK(src.status().degraded.find("NOTIFY gap") != std::string::npos);
  src.confirm(sink.txns[0].position);
  CHECK(src.status().degraded.empty());
  // A lost listener is a gap again, open until the new widening is applied.
  f.pg.exec(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
      "WHERE application_name = 'pgbust-notify'");
  REQUIRE(drive(f.loop, [&] { return sink.txns.size() >= 2; }));
  CHECK(src.status().degraded.find("NOTIFY gap") != std::string::npos);
  src.confirm(sink.txns[1].position);
  CHECK(src.status().degraded.empty());
  f.loop.remove(&src);
  src.close();
}

// --- signed payloads (issue 12, part 3) ---------------------------------------------------

namespace {

// A connection as `role` (created LOGIN, without any grant unless the test gives some).
pg::Conn connect_as(const test::Postgres& pg, const std::string& role) {
  pg.exec("DO $$BEGIN CREATE ROLE " + role +
          " LOGIN; EXCEPTION WHEN duplicate_object THEN "
          "NULL; END$$");
  return pg::connect(pg.conninfo() + " user=" + role);
}

}  // namespace

TEST_CASE("a role with no grants sends forged NOTIFYs: nothing is deleted, each is counted") {
  // Issue 12: PostgreSQL has no permission on NOTIFY channels; before payloads were signed, a
  // role with no grants deleted a chosen cache key with a plain NOTIFY.
  Fixture f;
  RedisPath to_redis(f.loop, f.rules);
  test::Redis& redis = to_redis.redis;
  Pipeline& pipeline = to_redis.pipeline;
  NotifySource src(f.options(), *f.rules, pipeline);
  f.loop.add(&src);
  REQUIRE(drive(f.loop, [&] {
    return src.status().state == SourceState::Streaming && pipeline.idle() &&
           pipeline.stats().transactions >= 1;
  }));
  f.pg.exec("INSERT INTO items VALUES (5, 'x')");
  REQUIRE(drive(f.loop, [&] { return pipeline.stats().transactions >= 2 && pipeline.idle(); }));
  for (auto k : {"order:1", "customer_orders:1", "item:5"}) redis.set(k, "cached");

  // The intruder can connect, nothing more: it cannot read the key nor have payloads signed.
  pg::Conn intruder = connect_as(f.pg, "intruder");
  CHECK_THROWS(pg::exec(intruder.get(), "SELECT * FROM pgbust.notify_key", "reading the key"));
  CHECK_THROWS(pg::exec(intruder.get(), "SELECT pgbust.notify_sign('{}')", "signing"));
  std::string forged = R"({"table": "orders", "op": "delete", "old": {"id": "1", )"
                       R"("customer_id": "1", "title": "x"}})";
  std::string key_id = f.pg.scalar("SELECT id FROM pgbust.notify_key").value_or("?");
  for (const std::string& payload :
       {forged,                                                        // unsigned
        "sig1:" + key_id + ":" + std::string(64, 'a') + ":" + forged,  // bad_signature
        "sig1:ffffffff:" + std::string(64, 'a') + ":" + forged,        // unknown_key
        "sig1:" + key_id + ":zz:" + forged})                           // malformed_signature
    pg::exec(intruder.get(), "NOTIFY inval, " + pg::quote_literal(payload), "a forged NOTIFY");

  // A writer with only DELETE and SELECT on items: its change, signed by the trigger (which
  // runs as its owner), deletes its key.
  pg::Conn writer = connect_as(f.pg, "writer");
  f.pg.exec("GRANT SELECT, DELETE ON items TO writer");
  pg::exec(writer.get(), "DELETE FROM items WHERE id = 5", "a writer's delete");
  REQUIRE(drive(f.loop, [&] { return !redis.exists("item:5") && pipeline.idle(); }));
  // The payload with an unknown key id waits for a second read of the keys, which may answer
  // after the writer's change was handled.
  REQUIRE(drive(f.loop, [&] {
    std::uint64_t n = 0;
    for (auto r : src.counters().rejected) n += r;
    return n == 4 && pipeline.idle();
  }));
  CHECK(redis.exists("order:1"));
  CHECK(redis.exists("customer_orders:1"));
  const auto& c = src.counters();
  CHECK(c.rejected[static_cast<int>(notify::Reject::Unsigned)] == 1);
  CHECK(c.rejected[static_cast<int>(notify::Reject::BadSignature)] == 1);
  CHECK(c.rejected[static_cast<int>(notify::Reject::UnknownKey)] == 1);
  CHECK(c.rejected[static_cast<int>(notify::Reject::Malformed)] == 1);
  CHECK(c.key_reads == 2);  // at LISTEN, and once more for the unknown key id
  CHECK(c.malformed == 0);
  auto st = src.status();
  CHECK(st.rejected ==
        std::vector<std::pair<std::string, std::uint64_t>>{
            {"unsigned", 1}, {"malformed_signature", 1}, {"unknown_key", 1}, {"bad_signature", 1}});
  CHECK(st.last_error.find("rejected payload") != std::string::npos);
  CHECK(st.state == SourceState::Streaming);
  f.loop.remove(&src);
  src.close();
  to_redis.target.close();
}

TEST_CASE("a key rotated while pgbust listens: it reads the keys again, nothing is rejected") {
  SourceFixture f;
  REQUIRE(f.wait_txns(1));
  f.pg.exec("INSERT INTO items VALUES (1, 'old key')");
  REQUIRE(f.wait_txns(2));
  auto cfg = f.dir.path() / "pgbust.yaml";
  auto r = test::run({test::pgbust_binary(), "setup", "--notify", "--apply", "--rotate-key",
                      "--config", cfg.string()});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(f.pg.scalar("SELECT count(*) FROM pgbust.notify_key") == "2");
  f.pg.exec("INSERT INTO items VALUES (2, 'new key')");
  REQUIRE(f.wait_txns(3));
  CHECK(f.sink.txns[2].lines == std::vector<std::string>{"insert public.items new{id=2}"});
  CHECK(f.src->counters().key_reads == 2);
  for (auto n : f.src->counters().rejected) CHECK(n == 0);
  // A second rotation drops the first key: two are kept.
  r = test::run({test::pgbust_binary(), "setup", "--notify", "--apply", "--rotate-key", "--config",
                 cfg.string()});
  REQUIRE(r.exit_code == 0);
  CHECK(f.pg.scalar("SELECT count(*) FROM pgbust.notify_key") == "2");
}

TEST_CASE("sources.notify.verify: false accepts unsigned payloads (hand-written triggers)") {
  Fixture f;
  RecordingSink sink;
  auto o = f.options();
  o.notify.verify = false;
  NotifySource src(o, *f.rules, sink);
  f.loop.add(&src);
  REQUIRE(drive(f.loop, [&] { return sink.txns.size() >= 1; }));
  f.pg.exec(R"(NOTIFY inval, '{"table": "items", "op": "insert", "new": {"id": "4"}}')");
  f.pg.exec("INSERT INTO items VALUES (3, 'signed by the trigger: the envelope is skipped')");
  REQUIRE(drive(f.loop, [&] { return sink.txns.size() >= 3; }));
  CHECK(sink.txns[1].lines == std::vector<std::string>{"insert public.items new{id=4}"});
  CHECK(sink.txns[2].lines == std::vector<std::string>{"insert public.items new{id=3}"});
  CHECK(src.status().rejected.empty());
  f.loop.remove(&src);
  src.close();
}

TEST_CASE("verify on, but pgbust's role cannot read the key: the error says what to do") {
  Fixture f;
  pg::Conn reader = connect_as(f.pg, "nokey");
  RecordingSink sink;
  auto o = f.options();
  o.conninfo = f.pg.conninfo() + " user=nokey";
  NotifySource src(o, *f.rules, sink);
  f.loop.add(&src);
  REQUIRE(drive(f.loop, [&] { return src.status().state == SourceState::BackingOff; }));
  auto err = src.status().last_error;
  CAPTURE(err);
  CHECK(err.find("pgbust.notify_key") != std::string::npos);
  CHECK(err.find("permission denied") != std::string::npos);
  CHECK(sink.txns.empty());
  // Granted as `pgbust setup --notify --grant-to nokey` does: it streams.
  f.pg.exec("GRANT USAGE ON SCHEMA pgbust TO nokey; GRANT SELECT ON pgbust.notify_key TO nokey");
  REQUIRE(drive(f.loop, [&] { return src.status().state == SourceState::Streaming; }));
  f.loop.remove(&src);
  src.close();
}

TEST_CASE("the daemon end to end: a forged NOTIFY is logged quoted and counted in /metrics") {
  Fixture f;
  test::Redis redis;
  auto cfg = f.dir.write("daemon.yaml", "postgres: {conninfo: \"" + f.pg.conninfo() +
                                            "\"}\nsources: {notify: {channels: [inval]}}\n"
                                            "redis: {url: \"" +
                                            redis.url() +
                                            "\"}\nrules: rules.yaml\n"
                                            "status: {interval: 1s, listen: \"127.0.0.1:0\"}\n");
  test::Daemon daemon({"run", "--config", cfg.string()});
  REQUIRE(daemon.wait_for_output("notify [streaming]", 30s));
  std::string out = daemon.output();
  auto at = out.find("metrics on http://");
  REQUIRE(at != std::string::npos);
  at += std::string("metrics on http://").size();
  std::string addr = out.substr(at, out.find_first_of(" \n", at) - at);
  auto metric = [&](const std::string& name) {
    auto r = test::run({"curl", "-s", "--max-time", "5", "http://" + addr + "/metrics"});
    auto pos = r.output.find("\n" + name + " ");
    return pos == std::string::npos ? -1.0 : std::stod(r.output.substr(pos + name.size() + 2));
  };
  REQUIRE(test::eventually([&] { return metric("pgbust_transactions_applied_total") >= 1; }));
  CHECK(metric("pgbust_notify_rejected_total{reason=\"unsigned\"}") == 0);

  redis.set("order:1", "cached");
  redis.set("item:2", "cached");
  pg::Conn intruder = connect_as(f.pg, "intruder");
  pg::exec(intruder.get(),
           R"(NOTIFY inval, '{"table": "orders", "op": "delete", "old": {"id": "1"}}')"
           "\n"
           R"(; NOTIFY inval, E'{"table": "orders\ncritical: forged line"}')",
           "a forged NOTIFY");
  f.pg.exec("INSERT INTO items VALUES (2, 'real')");
  REQUIRE(test::eventually([&] { return !redis.exists("item:2"); }, 30s));
  CHECK(redis.exists("order:1"));
  REQUIRE(test::eventually(
      [&] { return metric("pgbust_notify_rejected_total{reason=\"unsigned\"}") == 2; }, 10s));
  CHECK(metric("pgbust_notify_rejected_total{reason=\"bad_signature\"}") == 0);
  out = daemon.output();
  INFO(out);
  CHECK(out.find("rejected payload on channel \"inval\" (unsigned)") != std::string::npos);
  CHECK(out.find("\ncritical: forged line") == std::string::npos);
  // The key itself never reaches a log line (only its id).
  std::string secret = f.pg.scalar("SELECT encode(secret, 'hex') FROM pgbust.notify_key").value();
  CHECK(out.find(secret) == std::string::npos);
  CHECK(out.find("NOTIFY signing keys read from") != std::string::npos);
  daemon.signal(SIGTERM);
  CHECK(daemon.wait(30s) == 0);
}

namespace {

std::atomic<bool> g_release_dns{false};

// A DNS server that does not answer until the test releases it (10 s at most); then the name
// is 127.0.0.1, where the test PostgreSQL listens.
int hanging_getaddrinfo(const char*, const char* service, const addrinfo* hints, addrinfo** res) {
  for (int i = 0; i < 1000 && !g_release_dns; ++i) std::this_thread::sleep_for(10ms);
  return getaddrinfo("127.0.0.1", service, hints, res);
}

// Fires every 10 ms; the longest gap between two firings shows a stalled loop.
struct Ticker : Pollable {
  TimePoint next = Clock::now(), last = Clock::now();
  Clock::duration max_gap{};
  int fires = 0;
  int fd() const override { return -1; }
  short events() const override { return 0; }
  void on_ready(short) override {}
  TimePoint deadline() const override { return next; }
  void on_timer(TimePoint) override {
    TimePoint now = Clock::now();
    max_gap = std::max(max_gap, now - last);
    last = now;
    next = now + 10ms;
    ++fires;
  }
};

}  // namespace

TEST_CASE("the PostgreSQL host name is resolved off the loop: a hanging DNS stalls nothing") {
  Fixture f;
  g_release_dns = false;
  set_getaddrinfo_for_tests(&hanging_getaddrinfo);
  struct Restore {
    ~Restore() {
      g_release_dns = true;
      set_getaddrinfo_for_tests(nullptr);
    }
  } restore;
  RecordingSink sink;
  auto o = f.options();
  o.conninfo += " host=db.dns-hangs.test";  // the later host= wins
  o.connect_timeout = 30s;
  NotifySource src(o, *f.rules, sink);
  Ticker ticker;
  f.loop.add(&src);
  f.loop.add(&ticker);
  drive_for(f.loop, 500ms);
  CHECK(ticker.fires >= 20);
  CHECK(ticker.max_gap < 300ms);
  CHECK(src.status().state == SourceState::Connecting);
  g_release_dns = true;
  CHECK(drive(f.loop, [&] { return src.status().state == SourceState::Streaming; }));
  f.loop.remove(&ticker);
  f.loop.remove(&src);
  src.close();
}

TEST_CASE("the PostgreSQL host as a name (localhost) connects; one that does not resolve says so") {
  Fixture f;
  RecordingSink sink;
  auto o = f.options();
  SUBCASE("localhost") {
    o.conninfo += " host=localhost";
    NotifySource src(o, *f.rules, sink);
    f.loop.add(&src);
    CHECK(drive(f.loop, [&] { return src.status().state == SourceState::Streaming; }));
    f.loop.remove(&src);
    src.close();
  }
  SUBCASE("a name with no address") {
    o.conninfo += " host=no-such-host.invalid";
    NotifySource src(o, *f.rules, sink);
    f.loop.add(&src);
    CHECK(drive(
        f.loop, [&] { return !src.status().last_error.empty(); }, 30s));
    CHECK(src.status().last_error.find("cannot resolve 'no-such-host.invalid': ") !=
          std::string::npos);
    f.loop.remove(&src);
    src.close();
  }
}
