// Several hosts, one active (issue 16 item 9): two daemons with the same configuration (their
// own state directories and metrics ports, as two hosts would have) on one slot. One streams,
// the other is standby (healthy, /healthz 200, pgbust_active 0); when the active one is
// SIGKILLed during a workload or stopped, the standby takes over and every committed key is
// invalidated.
#include <doctest/doctest.h>

#include <csignal>
#include <string>
#include <thread>

#include "e2e.hpp"
#include "pgbust/pg/libpq.hpp"

using namespace pgbust::test;

namespace {

const char* kRules = R"(version: 1
rules:
  - name: item-keys
    table: items
    delete: ["item:${id}"]
)";

// The metrics address a daemon logged ("metrics on http://ADDR").
std::string address_of(Daemon& d) {
  std::string addr;
  eventually([&] {
    std::string out = d.output();
    auto at = out.find("metrics on http://");
    if (at == std::string::npos) return false;
    at += std::string("metrics on http://").size();
    addr = out.substr(at, out.find_first_of(" \n", at) - at);
    return true;
  });
  REQUIRE_FALSE(addr.empty());
  return addr;
}

struct Answer {
  int code = 0;
  std::string body;
};

Answer get(const std::string& addr, const std::string& path) {
  auto r = run({"curl", "-s", "-w", "\n%{http_code}", "--max-time", "5", "http://" + addr + path});
  Answer a;
  auto nl = r.output.rfind('\n');
  if (nl == std::string::npos) return a;
  a.body = r.output.substr(0, nl);
  a.code = std::atoi(r.output.c_str() + nl + 1);
  return a;
}

bool verdict_is(const std::string& addr, const std::string& verdict, int code) {
  Answer a = get(addr, "/healthz");
  return a.code == code && a.body.rfind(verdict + ":", 0) == 0;
}

const std::string kActive = "pgbust_active{source=\"logical\"}";

std::vector<std::string> item_keys(int from, int to) {
  std::vector<std::string> keys;
  for (int i = from; i <= to; ++i) keys.push_back("item:" + std::to_string(i));
  return keys;
}

int remaining(const E2E& e, const std::vector<std::string>& keys) {
  int n = 0;
  for (const auto& k : keys) n += e.redis.exists(k) ? 1 : 0;
  return n;
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The second host: the same configuration with its own state directory.
std::unique_ptr<Daemon> second_host(E2E& e) {
  std::string cfg = e.config((e.dir.path() / "rules.yaml").string());
  const std::string state = (e.dir.path() / "state").string();
  cfg.replace(cfg.find(state), state.size(), (e.dir.path() / "state-b").string());
  auto path = e.dir.write("pgbust-b.yaml", cfg);
  return std::make_unique<Daemon>(std::vector<std::string>{"run", "--config", path.string()});
}

}  // namespace

TEST_CASE("two hosts on one slot: the standby takes over when the active one is SIGKILLed") {
  E2E e;
  e.listen = "127.0.0.1:0";
  e.pg.exec("CREATE TABLE items (id int PRIMARY KEY)");
  e.start(kRules, "items");
  const std::string addr_a = address_of(*e.daemon);
  auto b = second_host(e);
  INFO("host b:\n" << b->output());
  INFO(e.logs());
  const std::string addr_b = address_of(*b);

  // B waits: standby, healthy for /healthz, not active; A is the active one.
  REQUIRE(eventually([&] { return verdict_is(addr_b, "standby", 200); }, 30s));
  CHECK(get(addr_b, "/healthz").body.find("logical standby (") != std::string::npos);
  CHECK(get(addr_b, "/healthz").body.find("is active for PID") != std::string::npos);
  CHECK(metric(addr_b, kActive) == 0);
  CHECK(metric(addr_a, kActive) == 1);
  CHECK(verdict_is(addr_a, "healthy", 200));
  // B keeps one replication connection open while standby (it looks at the slot again on it).
  REQUIRE(eventually([&] {
    return std::stoi(e.pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                 "'walsender'")
                         .value_or("0")) == 2;
  }));

  auto keys = item_keys(1, 3000);
  e.set_keys(keys);
  std::thread writer([&] {
    for (int i = 1; i <= 3000; i += 10)
      e.pg.exec("INSERT INTO items SELECT g FROM generate_series(" + std::to_string(i) + ", " +
                std::to_string(i + 9) + ") g");
  });
  // Kill A once some, but not all, of the stream has been applied.
  bool some = eventually([&] { return remaining(e, {keys.begin(), keys.begin() + 200}) < 200; });
  e.daemon->signal(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  CHECK(some);
  CHECK(e.daemon->wait(10s).has_value());

  // B takes over (the walsender of a killed process exits when its socket closes).
  CHECK(eventually([&] { return b->output().find("taking over slot") != std::string::npos; }, 30s));
  const double takeover =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  MESSAGE("standby took over " << takeover << " s after the SIGKILL (bound: a few seconds)");
  writer.join();
  CHECK(eventually([&] { return verdict_is(addr_b, "healthy", 200); }, 60s));
  CHECK(metric(addr_b, kActive) == 1);
  e.sync(60s);
  CHECK(remaining(e, keys) == 0);
  const std::string out = b->output();
  CHECK(count(out, "another instance is active") == 1);  // logged once, however many rechecks
  CHECK(count(out, "taking over slot") == 1);
  CHECK(metric(addr_b, "pgbust_reconnects_total{upstream=\"logical\"}") == 0);

  // A comes back: now it is the standby. A clean stop of B hands the slot over at once.
  e.restart_daemon();
  const std::string addr_a2 = address_of(*e.daemon);
  REQUIRE(eventually([&] { return verdict_is(addr_a2, "standby", 200); }, 30s));
  CHECK(metric(addr_a2, kActive) == 0);
  e.redis.set("item:1", "cached");
  e.pg.exec("UPDATE items SET id = id WHERE id = 1");
  CHECK(eventually([&] { return !e.redis.exists("item:1"); }));
  b->signal(SIGTERM);
  CHECK(b->wait(30s) == std::optional<int>(0));
  CHECK(eventually([&] { return verdict_is(addr_a2, "healthy", 200); }, 30s));
  e.set_keys({"item:2", "item:3"});
  e.pg.exec("UPDATE items SET id = id WHERE id IN (2, 3)");
  e.sync();
  CHECK(remaining(e, {"item:2", "item:3"}) == 0);
}

TEST_CASE("two hosts with NOTIFY and poll sources: one listener and one poller across hosts") {
  Postgres pg;
  Redis redis;
  TempDir dir;
  pg.exec(
      "CREATE TABLE orders (id int PRIMARY KEY, customer_id int);"
      "CREATE TABLE act (id bigserial PRIMARY KEY, group_id int)");
  dir.write("rules.yaml", R"(version: 1
rules:
  - name: orders
    table: orders
    delete: ["order:${id}"]
  - name: act
    table: act
    delete: ["act:${id}"]
)");
  // The same configuration on both hosts but for the state directory.
  auto config = [&](const std::string& state) {
    return dir.write("pgbust-" + state + ".yaml",
                     "postgres: {conninfo: \"" + pg.conninfo() +
                         "\"}\n"
                         "sources:\n"
                         "  notify: {channels: [inval], on_gap: widen, tables: [orders]}\n"
                         "  poll:\n"
                         "    interval: 200ms\n"
                         "    state_dir: " +
                         (dir.path() / state).string() +
                         "\n"
                         "    tables:\n"
                         "      - {table: public.act, watermark: [id], overlap: 0s}\n"
                         "redis: {url: \"" +
                         redis.url() +
                         "\"}\n"
                         "rules: " +
                         (dir.path() / "rules.yaml").string() +
                         "\n"
                         "status: {interval: 1s, listen: \"127.0.0.1:0\"}\n");
  };
  const auto config_a = config("state-a"), config_b = config("state-b");
  auto setup =
      run({pgbust_binary(), "setup", "--notify", "--apply", "--config", config_a.string()});
  INFO(setup.output);
  REQUIRE(setup.exit_code == 0);

  auto a = std::make_unique<Daemon>(std::vector<std::string>{"run", "--config", config_a.string()});
  const std::string addr_a = address_of(*a);
  REQUIRE(eventually([&] { return verdict_is(addr_a, "healthy", 200); }, 30s));
  auto b = std::make_unique<Daemon>(std::vector<std::string>{"run", "--config", config_b.string()});
  INFO("host a:\n" << a->output());
  INFO("host b:\n" << b->output());
  const std::string addr_b = address_of(*b);
  REQUIRE(eventually([&] { return verdict_is(addr_b, "standby", 200); }, 30s));
  const std::string body = get(addr_b, "/healthz").body;
  CHECK(body.find("notify standby (the advisory lock \"pgbust:notify:inval\" is held by PID ") !=
        std::string::npos);
  CHECK(body.find("poll standby (the advisory lock \"pgbust:poll:public.act\" is held by PID ") !=
        std::string::npos);
  CHECK(metric(addr_b, "pgbust_active{source=\"notify\"}") == 0);
  CHECK(metric(addr_b, "pgbust_active{source=\"poll\"}") == 0);
  CHECK(metric(addr_a, "pgbust_active{source=\"notify\"}") == 1);
  // A holds both locks; B's sessions wait without them.
  CHECK(pg.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted") ==
        std::optional<std::string>("2"));

  redis.set("order:1", "cached");
  redis.set("act:1", "cached");
  pg.exec("INSERT INTO orders VALUES (1, 10)");
  pg.exec("INSERT INTO act (group_id) VALUES (7)");
  CHECK(eventually([&] { return !redis.exists("order:1") && !redis.exists("act:1"); }));

  a->signal(SIGKILL);
  CHECK(a->wait(10s).has_value());
  // The killed session's locks go with its connection: B takes over both sources.
  CHECK(eventually([&] { return verdict_is(addr_b, "healthy", 200); }, 30s));
  CHECK(metric(addr_b, "pgbust_active{source=\"notify\"}") == 1);
  CHECK(metric(addr_b, "pgbust_active{source=\"poll\"}") == 1);
  CHECK(count(b->output(), "taking over after") == 2);
  redis.set("order:2", "cached");
  redis.set("act:2", "cached");
  pg.exec("INSERT INTO orders VALUES (2, 10)");
  pg.exec("INSERT INTO act (group_id) VALUES (7)");
  CHECK(eventually([&] { return !redis.exists("order:2") && !redis.exists("act:2"); }));
}

TEST_CASE("pgbust's connections keep TCP alive on both ends unless the conninfo says otherwise") {
  Postgres pg;
  auto show = [](PGconn* c, const std::string& setting) {
    auto r = pgbust::pg::exec(c, "SHOW " + setting, "SHOW");
    return std::string(PQgetvalue(r.get(), 0, 0));
  };
  auto client = [](PGconn* c, const std::string& keyword) {
    std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> opts(PQconninfo(c),
                                                                        PQconninfoFree);
    for (auto* o = opts.get(); o && o->keyword; ++o)
      if (keyword == o->keyword && o->val) return std::string(o->val);
    return std::string();
  };
  {
    auto c = pgbust::pg::connect(pg.conninfo());
    // The server notices a dead pgbust host (its locks and slot go) within ~25 s of silence.
    CHECK(show(c.get(), "tcp_keepalives_idle") == "10");
    CHECK(show(c.get(), "tcp_keepalives_interval") == "5");
    CHECK(show(c.get(), "tcp_keepalives_count") == "3");
    CHECK(client(c.get(), "keepalives_idle") == "10");
    CHECK(show(c.get(), "TimeZone") == "UTC");  // the render settings still apply
  }
  {
    auto c = pgbust::pg::connect(pg.conninfo() +
                                 " keepalives_idle=30 options='-c tcp_keepalives_idle=40'");
    CHECK(show(c.get(), "tcp_keepalives_idle") == "40");
    CHECK(client(c.get(), "keepalives_idle") == "30");
  }
}
