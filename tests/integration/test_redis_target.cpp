// The Redis target against a real redis-server: deletes, pattern deletes, seeded bumps,
// publish order, AUTH, SELECT, unix sockets, and at-least-once across pauses and restarts.
#include <doctest/doctest.h>
#include <hiredis/hiredis.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "harness.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/core/resolver.hpp"
#include "pgbust/pipeline/fan_out.hpp"
#include "pgbust/redis/redis.hpp"
#include "target_rig.hpp"

using namespace std::chrono_literals;
using pgbust::redis::Batch;
using pgbust::redis::Options;
using pgbust::redis::State;
using pgbust::redis::Target;

namespace {

// A blocking hiredis client for checks the harness cannot make (AUTH, SELECT, SUBSCRIBE).
class Client {
 public:
  explicit Client(int port, const std::string& password = "", int db = 0) {
    timeval tv{5, 0};
    c_.reset(redisConnectWithTimeout("127.0.0.1", port, tv));
    REQUIRE(c_);
    REQUIRE_MESSAGE(c_->err == 0, c_->errstr);
    redisSetTimeout(c_.get(), tv);
    if (!password.empty()) cmd({"AUTH", password});
    if (db != 0) cmd({"SELECT", std::to_string(db)});
  }
  // The reply as text (integers in decimal, nil as "(nil)", arrays joined by ','); throws
  // on an error reply.
  std::string cmd(const std::vector<std::string>& argv) {
    std::vector<const char*> p;
    std::vector<size_t> l;
    for (const auto& a : argv) {
      p.push_back(a.data());
      l.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c_.get(), static_cast<int>(argv.size()), p.data(), l.data()));
    return take(r);
  }
  // The next pushed reply, or nullopt when none comes within `wait` (the client is unusable
  // after a timeout).
  std::optional<std::string> next_within(std::chrono::milliseconds wait) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(wait).count();
    redisSetTimeout(c_.get(), timeval{static_cast<time_t>(us / 1000000),
                                      static_cast<suseconds_t>(us % 1000000)});
    void* r = nullptr;
    if (redisGetReply(c_.get(), &r) != REDIS_OK) return std::nullopt;
    return take(static_cast<redisReply*>(r));
  }
  // The next pushed reply (SUBSCRIBE messages).
  std::string next() {
    void* r = nullptr;
    if (redisGetReply(c_.get(), &r) != REDIS_OK) throw std::runtime_error(c_->errstr);
    return take(static_cast<redisReply*>(r));
  }

 private:
  static std::string render(const redisReply* r) {
    switch (r->type) {
      case REDIS_REPLY_INTEGER:
        return std::to_string(r->integer);
      case REDIS_REPLY_NIL:
        return "(nil)";
      case REDIS_REPLY_ARRAY: {
        std::string s;
        for (size_t i = 0; i < r->elements; ++i) s += (i ? "," : "") + render(r->element[i]);
        return s;
      }
      default:
        return std::string(r->str, r->len);
    }
  }
  std::string take(redisReply* r) {
    if (!r) throw std::runtime_error(std::string("redis: ") + c_->errstr);
    std::unique_ptr<redisReply, decltype(&freeReplyObject)> owned(r, &freeReplyObject);
    if (r->type == REDIS_REPLY_ERROR) throw std::runtime_error(std::string(r->str, r->len));
    return render(r);
  }
  struct Free {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  std::unique_ptr<redisContext, Free> c_;
};

Options fast(const std::string& url) {
  Options o;
  o.url = url;
  o.connect_timeout = 500ms;
  o.command_timeout = 500ms;
  o.backoff_min = 20ms;
  o.backoff_max = 200ms;
  o.log_interval = 1s;
  return o;
}

using Rig = pgbust::test::TargetRig;

// Creates `n` keys prefix0..prefix{n-1} in one round trip.
void fill(pgbust::test::Redis& redis, const std::string& prefix, int n, int db = 0) {
  redis.command({"EVAL",
                 "redis.call('SELECT', ARGV[3]) for i = 0, tonumber(ARGV[2]) - 1 do "
                 "redis.call('SET', ARGV[1] .. i, 'v') end",
                 "0", prefix, std::to_string(n), std::to_string(db)});
}

Batch make(std::vector<std::string> deletes, std::vector<std::string> patterns = {},
           std::vector<std::string> bumps = {}) {
  Batch b;
  b.deletes = std::move(deletes);
  b.patterns = std::move(patterns);
  b.bumps = std::move(bumps);
  return b;
}

long long count(pgbust::test::Redis& redis, const std::string& pattern) {
  return static_cast<long long>(redis.keys(pattern).size());
}

long long now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("deletes: many keys, existing and not, streamed in chunks") {
  pgbust::test::Redis redis;
  fill(redis, "d:", 3000);
  redis.set("keep", "1");
  Options o = fast(redis.url());
  o.unlink_chunk = 100;
  o.max_in_flight = 4;
  Rig rig(o);
  Batch b;
  for (int i = 0; i < 4000; ++i) b.deletes.push_back("d:" + std::to_string(i));  // 1000 absent
  REQUIRE(rig.apply(std::move(b)));
  CHECK(count(redis, "d:*") == 0);
  CHECK(redis.exists("keep"));
  CHECK(rig.target.stats().keys_deleted == 3000);
  CHECK(rig.target.stats().unlinks == 4000);
  CHECK(rig.target.stats().commands >= 40);
  CHECK(rig.target.queued() == 0);
  CHECK(rig.target.state() == State::Ready);
}

TEST_CASE("patterns: SCAN + UNLINK removes exactly the matching keys") {
  pgbust::test::Redis redis;
  fill(redis, "p:", 10000);
  fill(redis, "q:", 500);
  fill(redis, "pp", 10);
  for (int i = 0; i < 10; ++i) fill(redis, "multi" + std::to_string(i) + ":", 50);
  redis.set("a*b", "1");
  redis.set("axb", "1");
  redis.set("a\\*b", "1");
  Options o = fast(redis.url());
  o.scan_count = 300;
  o.unlink_chunk = 128;
  o.max_in_flight = 16;
  Rig rig(o);
  Batch b;
  b.patterns.push_back("p:*");
  b.patterns.push_back("a\\*b");  // a value "a*b" escaped: only the literal key
  for (int i = 0; i < 10; ++i) b.patterns.push_back("multi" + std::to_string(i) + ":*");
  b.patterns.push_back("nothing:*");
  REQUIRE(rig.apply(std::move(b), 60s));
  CHECK(count(redis, "p:*") == 0);
  CHECK(count(redis, "multi*") == 0);
  CHECK(count(redis, "q:*") == 500);
  CHECK(count(redis, "pp*") == 10);
  CHECK_FALSE(redis.exists("a*b"));
  CHECK(redis.exists("axb"));
  CHECK(redis.exists("a\\*b"));
  CHECK(rig.target.stats().patterns == 13);
  CHECK(rig.target.stats().keys_deleted == 10000 + 500 + 1);
}

TEST_CASE("bumps: seeded from the clock, incremented, never repeating after eviction") {
  pgbust::test::Redis redis;
  redis.set("rev:old", "5");
  Rig rig(fast(redis.url()));
  long long before = now_us();
  Batch b;
  b.bumps = {"rev:old", "rev:new"};
  REQUIRE(rig.apply(b));
  CHECK(redis.command({"GET", "rev:old"}) == "6");
  long long seeded = std::stoll(redis.command({"GET", "rev:new"}).value());
  CHECK(seeded > before);
  CHECK(seeded <= now_us() + 1);
  CHECK(rig.target.stats().bumps == 2);

  // Evicted between two bumps: the new value is above the old one, not 1.
  redis.command({"DEL", "rev:new"});
  Batch again;
  again.bumps = {"rev:new"};
  REQUIRE(rig.apply(again));
  CHECK(std::stoll(redis.command({"GET", "rev:new"}).value()) > seeded);

  SUBCASE("a key that is not a counter is replaced by a fresh one") {
    redis.command({"RPUSH", "rev:list", "x"});
    redis.set("rev:text", "abc");
    redis.set("rev:max", "9223372036854775807");
    Batch wrong;
    wrong.bumps = {"rev:list", "rev:text", "rev:max"};
    long long t0 = now_us();
    REQUIRE(rig.apply(wrong));
    for (const char* k : {"rev:list", "rev:text", "rev:max"}) {
      CAPTURE(k);
      CHECK(redis.command({"TYPE", k}) == "string");
      long long v = std::stoll(redis.command({"GET", k}).value());
      CHECK(v > t0);
      CHECK(v < 9223372036854775807LL);
    }
  }
}

TEST_CASE("publish reaches a subscriber only after the batch's deletes") {
  pgbust::test::Redis redis;
  fill(redis, "pub:", 2000);
  Client sub(redis.port());
  sub.cmd({"SUBSCRIBE", "inval"});
  std::atomic<long long> left_at_message{-1};
  std::string message;
  std::thread listener([&] {
    try {
      message = sub.next();
      left_at_message = count(redis, "pub:*");
    } catch (const std::exception&) {
    }
  });
  Options o = fast(redis.url());
  o.unlink_chunk = 50;
  o.max_in_flight = 2;
  Rig rig(o);
  Batch b;
  for (int i = 0; i < 2000; ++i) b.deletes.push_back("pub:" + std::to_string(i));
  b.bumps = {"rev:t"};
  b.publishes = {{"inval", R"({"keys":["pub:*"]})"}};
  bool ok = rig.apply(std::move(b));
  listener.join();
  REQUIRE(ok);
  CHECK(message == R"(message,inval,{"keys":["pub:*"]})");
  CHECK(left_at_message == 0);
  CHECK(rig.target.stats().publishes == 1);
}

TEST_CASE("a command that keeps failing never completes its batch, and says why") {
  pgbust::test::Redis redis;
  redis.command({"ACL", "SETUSER", "limited", "on", ">pw1", "~ok:*", "&*", "+@all"});
  redis.set("ok:1", "1");
  Client early(redis.port()), sub(redis.port());
  early.cmd({"SUBSCRIBE", "inval"});
  sub.cmd({"SUBSCRIBE", "inval"});
  Rig rig(fast("redis://limited:pw1@127.0.0.1:" + std::to_string(redis.port())));
  bool done = false;
  Batch b;
  b.deletes = {"ok:1", "secret:1"};  // NOPERM for the second
  b.publishes = {{"inval", "m"}};
  rig.target.apply(std::move(b), [&] { done = true; });
  REQUIRE(rig.run_until([&] { return rig.target.stats().errors >= 3; }));
  CHECK_FALSE(done);
  CHECK(rig.target.queued() == 1);
  std::string err = rig.target.last_error();
  CHECK(err.find("127.0.0.1:" + std::to_string(redis.port()) + " db 0") != std::string::npos);
  CHECK(err.find("UNLINK") != std::string::npos);
  CHECK(err.find("NOPERM") != std::string::npos);
  CHECK(err.find("pw1") == std::string::npos);
  CHECK(redis.exists("ok:1"));
  CHECK_FALSE(early.next_within(300ms));  // nothing published for the failing batch
  // Fix the permission: the batch goes through, and the publish is sent once at the end.
  redis.command({"ACL", "SETUSER", "limited", "~secret:*"});
  REQUIRE(rig.run_until([&] { return done; }));
  CHECK(sub.next() == "message,inval,m");
}

TEST_CASE("AUTH: user and password, password_file, requirepass; wrong password fails") {
  pgbust::test::Redis redis;
  pgbust::test::TempDir dir;
  redis.command({"ACL", "SETUSER", "pgbust", "on", ">s3cr3t", "~*", "&*", "+@all"});
  std::string port = std::to_string(redis.port());

  SUBCASE("user:password in the URL") {
    redis.set("k", "1");
    Rig rig(fast("redis://pgbust:s3cr3t@127.0.0.1:" + port + "/0"));
    REQUIRE(rig.apply(make({"k"})));
    CHECK_FALSE(redis.exists("k"));
  }
  SUBCASE("user in the URL, password from a file") {
    redis.set("k", "1");
    Options o = fast("redis://pgbust@127.0.0.1:" + port);
    o.password_file = dir.write("pw", "s3cr3t\n").string();
    Rig rig(o);
    REQUIRE(rig.apply(make({"k"})));
    CHECK_FALSE(redis.exists("k"));
  }
  SUBCASE("a wrong password: never ready, the error is Redis's, the password is not shown") {
    Rig rig(fast("redis://pgbust:wrongpw@127.0.0.1:" + port));
    bool done = false;
    rig.target.apply(make({"k"}), [&] { done = true; });
    REQUIRE(rig.run_until([&] { return rig.target.stats().errors >= 2; }));
    CHECK_FALSE(done);
    CHECK(rig.target.state() != State::Ready);
    CHECK(rig.target.last_error().find("AUTH failed: WRONGPASS") != std::string::npos);
    CHECK(rig.target.last_error().find("wrongpw") == std::string::npos);
  }
  SUBCASE("requirepass (default user) with the password from a file") {
    redis.command({"CONFIG", "SET", "requirepass", "topsecret"});
    Client admin(redis.port(), "topsecret");
    admin.cmd({"SET", "k", "1"});
    Options o = fast("redis://127.0.0.1:" + port);
    o.password_file = dir.write("pw", "topsecret\r\n").string();
    Rig rig(o);
    REQUIRE(rig.apply(make({"k"}, {}, {"rev"})));
    CHECK(admin.cmd({"EXISTS", "k"}) == "0");
    CHECK(admin.cmd({"EXISTS", "rev"}) == "1");
    admin.cmd({"CONFIG", "SET", "requirepass", ""});  // so the harness can talk to it again
  }
}

TEST_CASE("SELECT: the URL's database is the one changed") {
  pgbust::test::Redis redis;
  fill(redis, "s:", 100, 3);
  fill(redis, "s:", 100, 0);
  Rig rig(fast(redis.url(3)));
  Batch b;
  b.patterns = {"s:*"};
  b.deletes = {"x"};
  b.bumps = {"rev:s"};
  REQUIRE(rig.apply(std::move(b)));
  Client db3(redis.port(), "", 3);
  CHECK(db3.cmd({"DBSIZE"}) == "1");  // only rev:s
  CHECK(db3.cmd({"EXISTS", "rev:s"}) == "1");
  CHECK(count(redis, "s:*") == 100);
  CHECK_FALSE(redis.exists("rev:s"));
  CHECK(rig.target.describe() == "127.0.0.1:" + std::to_string(redis.port()) + " db 3");
}

TEST_CASE("unix socket") {
  pgbust::test::Redis redis;
  fill(redis, "u:", 50, 1);
  Rig rig(fast("unix://" + redis.unix_socket() + "?db=1"));
  REQUIRE(rig.apply(make({}, {"u:*"})));
  Client db1(redis.port(), "", 1);
  CHECK(db1.cmd({"DBSIZE"}) == "0");
  CHECK(rig.target.describe() == redis.unix_socket() + " db 1");
}

TEST_CASE("an idle connection closed by the server is reopened for the next batch") {
  pgbust::test::Redis redis;
  Rig rig(fast(redis.url()));
  REQUIRE(rig.run_until([&] { return rig.target.connected(); }));
  rig.run_for(1100ms);  // up long enough to count as an idle close, not a failure
  redis.command({"CLIENT", "KILL", "USER", "default", "SKIPME", "yes"});
  redis.set("k", "1");
  REQUIRE(rig.apply(make({"k"})));
  CHECK_FALSE(redis.exists("k"));
  CHECK(rig.target.stats().reconnects >= 1);
  CHECK(rig.target.stats().errors == 0);
}

TEST_CASE("a server refusing clients is retried with backoff, and the reason is logged") {
  pgbust::test::Redis redis;
  Client admin(redis.port());
  admin.cmd({"CONFIG", "SET", "maxclients", "1"});  // admin holds the only slot
  admin.cmd({"SET", "k", "1"});
  Rig rig(fast(redis.url()));
  bool done = false;
  rig.target.apply(make({"k"}), [&] { done = true; });
  rig.run_for(1000ms);
  CHECK_FALSE(done);
  CHECK(rig.target.state() != State::Ready);
  CHECK(rig.target.last_error().find("max number of clients") != std::string::npos);
  // Backed off (20ms doubling to 200ms: about 8 attempts a second), not a tight loop.
  CHECK(rig.target.stats().errors >= 3);
  CHECK(rig.target.stats().errors <= 20);
  admin.cmd({"CONFIG", "SET", "maxclients", "100"});
  REQUIRE(rig.run_until([&] { return done; }));
  CHECK(admin.cmd({"EXISTS", "k"}) == "0");
}

TEST_CASE("Redis paused mid-batch: command timeout, reconnect, the batch completes after") {
  pgbust::test::Redis redis;
  fill(redis, "z:", 20000);
  Options o = fast(redis.url());
  o.unlink_chunk = 50;
  o.max_in_flight = 2;
  Rig rig(o);
  bool done = false;
  Batch b;
  for (int i = 0; i < 20000; ++i) b.deletes.push_back("z:" + std::to_string(i));
  b.publishes = {{"c", "m"}};
  rig.target.apply(std::move(b), [&] { done = true; });
  REQUIRE(rig.run_until([&] { return rig.target.stats().unlinks >= 500; }));
  redis.pause();
  bool failed = rig.run_until([&] { return rig.target.stats().errors >= 2; }, 10s);
  bool done_while_paused = done;
  redis.resume();
  REQUIRE(failed);
  CHECK_FALSE(done_while_paused);
  CHECK(rig.target.last_error().find("no reply to") != std::string::npos);
  REQUIRE(rig.run_until([&] { return done; }, 30s));
  CHECK(count(redis, "z:*") == 0);
  CHECK(rig.target.stats().reconnects >= 1);
  CHECK(rig.target.stats().publishes >= 1);
}

TEST_CASE("Redis stopped then started: everything applied, in order, done only when it is") {
  pgbust::test::Redis redis;
  Options o = fast(redis.url());
  o.unlink_chunk = 20;
  o.max_in_flight = 2;
  Rig rig(o);
  REQUIRE(rig.run_until([&] { return rig.target.connected(); }));

  // Checks made the moment each done() runs: its work is in Redis by then.
  std::vector<int> order;
  std::vector<std::string> problems;
  auto done_check = [&](int n, std::function<bool()> applied) {
    return [&, n, applied] {
      order.push_back(n);
      if (!applied()) problems.push_back("batch " + std::to_string(n) + " done before applied");
    };
  };
  fill(redis, "one:", 1000);
  Batch b1;
  for (int i = 0; i < 1000; ++i) b1.deletes.push_back("one:" + std::to_string(i));
  rig.target.apply(std::move(b1), done_check(1, [&] { return count(redis, "one:*") == 0; }));
  rig.target.apply(make({}, {}, {"rev:two"}),
                   done_check(2, [&] { return redis.exists("rev:two"); }));
  rig.target.apply(Batch{}, done_check(3, [] { return true; }));
  Batch b4;
  b4.patterns = {"four:*"};
  b4.bumps = {"rev:four"};
  rig.target.apply(std::move(b4), done_check(4, [&] {
                     return count(redis, "four:*") == 0 && redis.exists("rev:four");
                   }));
  // Part of batch 1 goes through, then Redis goes away (losing its data: no persistence).
  REQUIRE(rig.run_until([&] { return rig.target.stats().unlinks >= 200; }));
  redis.stop();
  rig.run_for(1500ms);
  CHECK(order.empty());
  CHECK(rig.target.queued() == 4);
  CHECK(rig.target.state() != State::Ready);
  CHECK(rig.target.stats().errors >= 2);
  // Back, with the keys present again (the loop is not running meanwhile, so no race).
  redis.start();
  fill(redis, "one:", 1000);
  fill(redis, "four:", 300);
  fill(redis, "five:", 10);
  REQUIRE(rig.run_until([&] { return rig.target.queued() == 0; }, 30s));
  CHECK(order == std::vector<int>{1, 2, 3, 4});
  CHECK(problems.empty());
  CHECK(count(redis, "one:*") == 0);
  CHECK(count(redis, "four:*") == 0);
  CHECK(count(redis, "five:*") == 10);
  CHECK(rig.target.state() == State::Ready);
}

TEST_CASE("an empty batch completes without waiting for Redis, in order") {
  Options o = fast("redis://127.0.0.1:1");  // nothing listens on port 1
  Rig rig(o);
  std::vector<int> order;
  rig.target.apply(Batch{}, [&] { order.push_back(1); });
  rig.target.apply(make({"k"}), [&] { order.push_back(2); });
  rig.target.apply(Batch{}, [&] { order.push_back(3); });
  REQUIRE(rig.run_until([&] { return !order.empty(); }));
  rig.run_for(300ms);
  CHECK(order == std::vector<int>{1});
  CHECK(rig.target.queued() == 2);
  CHECK(rig.target.last_error().find("127.0.0.1:1 db 0") != std::string::npos);
  CHECK(rig.target.last_error().find("Connection refused") != std::string::npos);
}

TEST_CASE("a large batch (200k keys, and a pattern over them) streams through with defaults") {
  pgbust::test::Redis redis;
  fill(redis, "big:", 200000);
  fill(redis, "bigp:", 50000);
  fill(redis, "keep:", 10);
  // The default timeouts, as the name says: with fast()'s 500 ms a loaded machine timed a
  // command out, the attempt restarted and the UNLINK replies lost with it went uncounted.
  Options defaults;
  defaults.url = redis.url();
  Rig rig(defaults);
  Batch b;
  b.deletes.reserve(200000);
  for (int i = 0; i < 200000; ++i) b.deletes.push_back("big:" + std::to_string(i));
  b.patterns = {"bigp:*"};
  REQUIRE(rig.apply(std::move(b), 120s));
  CHECK(redis.command({"DBSIZE"}) == "10");
  CHECK(rig.target.stats().reconnects == 0);
  CHECK(rig.target.stats().keys_deleted == 250000);
  // 200000 keys in UNLINKs of 512: 391 commands, plus the SCAN pages and their UNLINKs.
  CHECK(rig.target.stats().commands >= 391 + 50);
}

namespace {

// A used_memory-style field of INFO memory.
long long info_memory(pgbust::test::Redis& redis, const std::string& field) {
  std::string info = redis.command({"INFO", "memory"}).value_or("");
  auto at = info.find(field + ":");
  REQUIRE(at != std::string::npos);
  return std::stoll(info.substr(at + field.size() + 1));
}

// Writes `count` values of 100 kB (big:0, big:1, ...), then sets maxmemory 150 kB below
// what the server uses, with noeviction: every command that may allocate (SET, INCR) is
// refused with OOM until two of them are deleted.
void fill_past_maxmemory(pgbust::test::Redis& redis, int count) {
  const std::string value(100 * 1024, 'x');
  for (int i = 0; i < count; ++i) redis.set("big:" + std::to_string(i), value);
  redis.command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  const long long used = info_memory(redis, "used_memory");
  redis.command({"CONFIG", "SET", "maxmemory", std::to_string(used - 150 * 1024)});
  CHECK_THROWS_WITH(redis.set("probe", "v"), doctest::Contains("OOM"));
}

}  // namespace

TEST_CASE("a batch refused with OOM is set aside: later batches' deletes still go through") {
  // Issue 10 #6: under maxmemory + noeviction a bump's SET NX fails with OOM. That batch must
  // not stop every later invalidation: later deletes (which Redis accepts, and which free
  // memory) are applied while it is retried, and it completes once memory is free again.
  pgbust::test::Redis redis;
  fill_past_maxmemory(redis, 10);
  Rig rig(fast(redis.url()));
  std::vector<int> done;
  rig.target.apply(make({}, {}, {"rev:1"}), [&] { done.push_back(1); });  // OOM
  rig.target.apply(make({"big:0", "big:1"}), [&] { done.push_back(2); });
  rig.target.apply(make({"big:2"}), [&] { done.push_back(3); });
  // The later deletes complete, though the bump batch before them failed.
  REQUIRE(rig.run_until([&] { return done.size() >= 2; }, 10s));
  CHECK(done[0] == 2);
  CHECK(done[1] == 3);
  CHECK_FALSE(redis.exists("big:0"));
  CHECK_FALSE(redis.exists("big:1"));
  CHECK_FALSE(redis.exists("big:2"));
  CHECK(redis.exists("big:3"));
  CHECK(rig.target.last_error().find("rev:1 failed: OOM") != std::string::npos);
  CHECK(rig.target.last_error().find("persistent") != std::string::npos);
  const auto& by = rig.target.stats().errors_by_class;
  auto it = by.find({"persistent", "SET NX"});
  REQUIRE(it != by.end());
  CHECK(it->second >= 1);
  CHECK(rig.target.stats().failing_batches <= 1);
  // The deletes freed memory: the set-aside bump batch goes through on a retry.
  REQUIRE(rig.run_until([&] { return done.size() == 3; }, 10s));
  CHECK(done[2] == 1);
  CHECK(redis.exists("rev:1"));
  CHECK(rig.target.queued() == 0);
  CHECK(rig.target.stats().failing_batches == 0);
}

TEST_CASE("a set-aside batch is retried without its deletes once they all succeeded") {
  pgbust::test::Redis redis;
  fill_past_maxmemory(redis, 10);
  Rig rig(fast(redis.url()));
  bool done = false;
  rig.target.apply(make({"gone:1"}, {"gone:p:*"}, {"rev:1"}), [&] { done = true; });
  REQUIRE(rig.run_until([&] { return rig.target.stats().errors >= 2; }));
  // Deleted once, before the bump failed; a key written since is not deleted by the retries.
  const auto unlinked = rig.target.stats().unlinks;
  CHECK(unlinked == 1);
  REQUIRE(rig.run_until([&] { return rig.target.stats().errors >= 4; }));
  CHECK(rig.target.stats().unlinks == unlinked);
  CHECK_FALSE(done);
  CHECK(rig.target.stats().failing_batches == 1);
  redis.command({"CONFIG", "SET", "maxmemory", "0"});
  REQUIRE(rig.run_until([&] { return done; }));
  CHECK(redis.exists("rev:1"));
}

// --- keyspace passes (issue 14 parts 2 and 4) -------------------------------------------

namespace {

// `n` keys made by the server itself (fast for a million), in calls of 200k so none outlasts
// the harness client's timeout on a loaded machine: prefix:0 .. prefix:199999, then
// prefix1:0 .., prefix2:0 ..
void populate(pgbust::test::Redis& redis, const std::string& prefix, int n) {
  constexpr int kChunk = 200000;
  for (int c = 0; c * kChunk < n; ++c)
    redis.command({"DEBUG", "POPULATE", std::to_string(std::min(kChunk, n - c * kChunk)),
                   prefix + (c == 0 ? "" : std::to_string(c))});
  REQUIRE(redis.command({"DBSIZE"}).value_or("0") != "0");
}

}  // namespace

TEST_CASE("head of line: a later batch's exact delete is applied while a pattern pass runs") {
  // Issue 14: one delete_pattern over a large keyspace held up every later transaction's
  // exact deletes until its pass ended. Now the later batch's key goes before the pass ends;
  // the pattern batch's done() still waits for its pass.
  pgbust::test::Redis redis;
  populate(redis, "pop", 1000000);  // pop:0 .. pop:199999, pop1:0 .. pop4:199999
  redis.set("later", "v");
  Rig rig(fast(redis.url()));
  REQUIRE(rig.run_until([&] { return rig.target.connected(); }));
  std::vector<int> order;
  bool pattern_done_first = false, later_gone_at_done = false;
  std::uint64_t passes_at_later = 99;
  // Matches 11 keys (pop:12345, pop:123450 ..) but the pass must walk all million.
  rig.target.apply(make({}, {"pop:12345*"}), [&] { order.push_back(1); });
  rig.target.apply(make({"later"}), [&] {
    order.push_back(2);
    pattern_done_first = order.front() == 1;
    passes_at_later = rig.target.stats().passes;
    later_gone_at_done = !redis.exists("later");
  });
  REQUIRE(rig.run_until([&] { return order.size() == 2; }, 120s));
  CHECK(order == std::vector<int>{2, 1});
  CHECK_FALSE(pattern_done_first);
  CHECK(passes_at_later == 0);  // the pass had not ended when the later key was gone
  CHECK(later_gone_at_done);
  CHECK(count(redis, "pop:12345*") == 0);
  CHECK(redis.exists("pop:1234"));
  CHECK(rig.target.stats().passes == 1);
  CHECK(rig.target.stats().pass_keys_scanned >= 900000);  // visited, estimated with MATCH
  CHECK(rig.target.stats().pass_keys_deleted == 11);
  CHECK(rig.target.stats().patterns == 1);
  CHECK_FALSE(rig.target.stats().pass_running);
}

TEST_CASE("patterns queued during a pass share one next pass") {
  pgbust::test::Redis redis;
  populate(redis, "pop", 200000);
  for (int i = 0; i < 10; ++i) fill(redis, "b" + std::to_string(i) + ":", 20);
  Rig rig(fast(redis.url()));
  int done = 0;
  rig.target.apply(make({}, {"pop:777*"}), [&] { ++done; });
  REQUIRE(rig.run_until([&] { return rig.target.stats().pass_running; }));
  CHECK(rig.target.stats().pass_patterns == 1);
  // Handed over while the first pass runs (the loop does not run in between): they join the
  // next pass, all ten together.
  for (int i = 0; i < 10; ++i)
    rig.target.apply(make({}, {"b" + std::to_string(i) + ":*"}), [&] { ++done; });
  // Once started, every batch waits only for a pass: the pipeline may hand over more.
  CHECK(rig.run_until([&] { return rig.target.idle(); }));
  REQUIRE(rig.run_until([&] { return done == 11; }, 60s));
  CHECK(rig.target.stats().passes == 2);
  CHECK(rig.target.stats().pass_patterns == 10);
  CHECK(rig.target.stats().patterns == 11);
  for (int i = 0; i < 10; ++i) CHECK(count(redis, "b" + std::to_string(i) + ":*") == 0);
  CHECK(count(redis, "pop:777*") == 0);
  CHECK(rig.target.stats().pass_keys_deleted == 200 + 111);
}

TEST_CASE("a widened bump: the pattern pass first, then the bump (get(k) or 0 changes)") {
  // Issue 14 part 4: a bump whose old value is unknown deletes rev:t:* and bumps the new
  // counter. The counter must survive: an app reading get(k) or 0 must see it change. A
  // later batch bumping a counter the running pass may delete waits for that pass too.
  pgbust::test::Redis redis;
  populate(redis, "pop", 300000);
  for (int i = 0; i < 500; ++i) redis.set("rev:t:" + std::to_string(i), "41");
  Rig rig(fast(redis.url()));
  std::vector<int> done;
  rig.target.apply(make({}, {"rev:t:*"}, {"rev:t:5"}), [&] { done.push_back(1); });
  REQUIRE(rig.run_until([&] { return rig.target.stats().pass_running; }));
  rig.target.apply(make({}, {}, {"rev:t:7"}), [&] { done.push_back(2); });
  rig.target.apply(make({}, {}, {"rev:u:1"}), [&] { done.push_back(3); });
  REQUIRE(rig.run_until([&] { return done.size() == 3; }, 60s));
  // rev:u:1 is not the pass's: it went at once. rev:t:7 waited for the pass.
  CHECK(done.front() == 3);
  auto value = [&](const std::string& k) {
    auto v = redis.command({"GET", k});
    return v && *v != "(nil)" ? std::stoll(*v) : 0LL;  // get(k) or 0
  };
  CHECK(value("rev:t:5") > 41);
  CHECK(value("rev:t:7") > 41);
  CHECK(value("rev:u:1") > 0);
  CHECK(count(redis, "rev:t:*") == 2);
}

TEST_CASE("stream entries go on while another batch's pass runs; each follows its own batch") {
  // Like publishes: a later batch's XADD is not held up by an earlier batch's keyspace pass,
  // and a batch's own entry is added only once its pass (and everything else of it) is done.
  pgbust::test::Redis redis;
  populate(redis, "pop", 1000000);
  redis.set("later", "v");
  Rig rig(fast(redis.url()));
  REQUIRE(rig.run_until([&] { return rig.target.connected(); }));
  auto xlen = [&] { return redis.command({"XLEN", "inval"}).value_or("?"); };
  std::vector<int> order;
  std::string xlen_at_later, xlen_at_pattern;
  std::uint64_t passes_at_later = 99;
  bool later_gone = false;
  Batch first = make({}, {"pop:12345*"});
  first.streams = {{"inval", "first"}};
  rig.target.apply(std::move(first), [&] {
    order.push_back(1);
    xlen_at_pattern = xlen();
  });
  Batch later = make({"later"});
  later.streams = {{"inval", "second"}};
  rig.target.apply(std::move(later), [&] {
    order.push_back(2);
    passes_at_later = rig.target.stats().passes;
    later_gone = !redis.exists("later");
    xlen_at_later = xlen();
  });
  REQUIRE(rig.run_until([&] { return order.size() == 2; }, 120s));
  CHECK(order == std::vector<int>{2, 1});
  CHECK(passes_at_later == 0);  // the pass had not ended when the later entry was added
  CHECK(later_gone);
  CHECK(xlen_at_later == "1");
  CHECK(xlen_at_pattern == "2");
  CHECK(count(redis, "pop:12345*") == 0);
  const std::string entries = redis.command({"XRANGE", "inval", "-", "+"}).value_or("");
  CHECK(entries.find("second") < entries.find("first"));
  CHECK(rig.target.stats().stream_entries == 2);
}

TEST_CASE("FanOut over two targets: exact deletes go on beside both passes; done waits for both") {
  // Several targets: a later batch's exact delete is applied on every target while each runs
  // its own pass, and the pattern batch is done (so confirmable) only once the pass on every
  // target has ended, even when one target's pass is held up long after the other's ended.
  pgbust::test::Redis r1, r2;
  populate(r1, "pop", 200000);
  populate(r2, "pop", 1000000);
  r1.set("later", "v");
  r2.set("later", "v");
  pgbust::Loop loop;
  Target t1(fast(r1.url())), t2(fast(r2.url()));
  loop.add(&t1);
  loop.add(&t2);
  pgbust::FanOut fan({{&t1, ""}, {&t2, ""}});
  auto run_until = [&](const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= end) return false;
      loop.run_once(20ms);
    }
    return true;
  };
  REQUIRE(run_until([&] { return t1.connected() && t2.connected(); }, 20s));
  std::vector<int> order;
  std::uint64_t passes_at_later = 99, passes_at_pattern = 0;
  bool later_gone = false;
  fan.apply(make({}, {"pop:12345*"}), [&] {
    order.push_back(1);
    passes_at_pattern = t1.stats().passes + t2.stats().passes;
  });
  fan.apply(make({"later"}), [&] {
    order.push_back(2);
    passes_at_later = t1.stats().passes + t2.stats().passes;
    later_gone = !r1.exists("later") && !r2.exists("later");
  });
  REQUIRE(run_until([&] { return !order.empty(); }, 120s));
  CHECK(order == std::vector<int>{2});
  CHECK(passes_at_later == 0);  // neither pass had ended
  CHECK(later_gone);
  CHECK(fan.idle());  // what is left waits only for passes: the pipeline may hand more over
  // The second target stops answering before its pass can end; the first one's ends.
  REQUIRE(t2.stats().passes == 0);
  r2.pause();
  REQUIRE(run_until([&] { return t1.stats().passes == 1; }, 120s));
  CHECK(count(r1, "pop:12345*") == 0);
  CHECK(order == std::vector<int>{2});  // not done: the second target's pass has not ended
  r2.resume();
  REQUIRE(run_until([&] { return order.size() == 2; }, 120s));
  CHECK(passes_at_pattern == 2);
  CHECK(count(r2, "pop:12345*") == 0);
  loop.remove(&t1);
  loop.remove(&t2);
}

namespace {

std::atomic<bool> g_release_dns{false};
std::atomic<int> g_slow_lookups{0};

// A resolver that hangs until the test releases it (10 s at most), then answers 127.0.0.1:
// a DNS server that does not answer.
int hanging_getaddrinfo(const char*, const char* service, const addrinfo* hints, addrinfo** res) {
  ++g_slow_lookups;
  for (int i = 0; i < 1000 && !g_release_dns; ++i) std::this_thread::sleep_for(10ms);
  return getaddrinfo("127.0.0.1", service, hints, res);
}

// Fires every 10 ms and records the longest gap between two rounds that reached it.
struct Ticker : pgbust::Pollable {
  pgbust::TimePoint next = pgbust::Clock::now();
  pgbust::TimePoint last = pgbust::Clock::now();
  pgbust::Clock::duration max_gap{};
  int fires = 0;
  int fd() const override { return -1; }
  short events() const override { return 0; }
  void on_ready(short) override {}
  pgbust::TimePoint deadline() const override { return next; }
  void on_timer(pgbust::TimePoint now) override {
    max_gap = std::max(max_gap, now - last);
    last = now;
    next = now + 10ms;
    ++fires;
  }
};

}  // namespace

TEST_CASE("a Redis host name is resolved off the loop: a hanging DNS stalls nothing else") {
  pgbust::test::Redis redis;
  std::string port = std::to_string(redis.port());
  g_release_dns = false;
  g_slow_lookups = 0;
  pgbust::set_getaddrinfo_for_tests(&hanging_getaddrinfo);
  struct Restore {
    ~Restore() {
      g_release_dns = true;
      pgbust::set_getaddrinfo_for_tests(nullptr);
    }
  } restore;
  Options slow = fast("redis://cache.dns-hangs.test:" + port);
  slow.connect_timeout = 30s;
  Rig rig(slow);
  Target other(fast(redis.url()));
  Ticker ticker;
  rig.loop.add(&other);
  rig.loop.add(&ticker);
  redis.set("k1", "1");
  redis.set("k2", "1");
  bool slow_done = false, other_done = false;
  rig.target.apply(make({"k1"}), [&] { slow_done = true; });
  other.apply(make({"k2"}), [&] { other_done = true; });

  // While the lookup hangs, the loop keeps its timers and the other target applies its batch.
  CHECK(rig.run_until([&] { return other_done && ticker.fires >= 50; }, 5s));
  CHECK(g_slow_lookups == 1);
  CHECK(rig.target.state() == State::Connecting);
  CHECK(ticker.max_gap < 500ms);
  CHECK_FALSE(slow_done);
  CHECK_FALSE(redis.exists("k2"));
  CHECK(redis.exists("k1"));

  // Answered: the target connects to what it resolved and applies its batch.
  g_release_dns = true;
  CHECK(rig.run_until([&] { return slow_done; }));
  CHECK_FALSE(redis.exists("k1"));
  rig.loop.remove(&other);
  rig.loop.remove(&ticker);
}

TEST_CASE("a Redis host name that resolves (localhost) connects; one that does not says so") {
  pgbust::test::Redis redis;
  std::string port = std::to_string(redis.port());
  SUBCASE("localhost (::1 first on some systems; the server listens on 127.0.0.1 only)") {
    redis.set("k", "1");
    Rig rig(fast("redis://localhost:" + port));
    REQUIRE(rig.apply(make({"k"})));
    CHECK_FALSE(redis.exists("k"));
  }
  SUBCASE("a name with no address: the error names it") {
    Rig rig(fast("redis://no-such-host.invalid:" + port));
    REQUIRE(rig.run_until([&] { return rig.target.stats().errors >= 1; }, 30s));
    CHECK(rig.target.last_error().find("cannot resolve 'no-such-host.invalid': ") !=
          std::string::npos);
  }
}
