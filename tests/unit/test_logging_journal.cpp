// Logging to journald through its native protocol: the fields of a record (priority, message,
// identifier, PGBUST_SOURCE/RULE/TARGET from the call's LogScope), the sink that sends them,
// and the "<N>" stderr line when the journal does not take the record. No journald is needed:
// the sink's sender is replaced, as Options::journal_send allows.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "pgbust/core/log_fields.hpp"
#include "pgbust/core/session.hpp"
#include "pgbust/ops/logging.hpp"
#include "test_support.hpp"

namespace {

using namespace pgbust;
using pgbust::test::TempDir;

bool has(const std::vector<std::string>& fields, const std::string& f) {
  return std::find(fields.begin(), fields.end(), f) != fields.end();
}
bool has_key(const std::vector<std::string>& fields, const std::string& key) {
  return std::any_of(fields.begin(), fields.end(),
                     [&](const std::string& f) { return f.rfind(key + "=", 0) == 0; });
}

// Logging to the journal through a replaced sender; restores plain stderr logging after.
struct JournalCapture {
  std::vector<std::vector<std::string>> records;
  int result = 0;  // what the sender answers: < 0 is a failure
  JournalCapture() {
    logging::Options o;
    o.level = "debug";
    o.journal = true;
    o.journal_native = true;
    o.journal_send = [this](const std::vector<std::string>& f) {
      records.push_back(f);
      return result;
    };
    logging::setup(o);
  }
  ~JournalCapture() { logging::setup(logging::Options{}); }
};

// What is written to fd 2 while `f` runs.
template <typename F>
std::string stderr_of(F f) {
  TempDir dir;
  auto path = dir.path() / "stderr";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  f();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fd);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("journal fields: priority, message, identifier and the scope's fields") {
  auto f = logging::journal_fields(spdlog::level::warn, "two\nlines", LogFields{});
  CHECK(f ==
        std::vector<std::string>{"PRIORITY=4", "MESSAGE=two\nlines", "SYSLOG_IDENTIFIER=pgbust"});
  f = logging::journal_fields(spdlog::level::err, "m", LogFields{"logical", "r1", "redis"});
  CHECK(has(f, "PRIORITY=3"));
  CHECK(has(f, "PGBUST_SOURCE=logical"));
  CHECK(has(f, "PGBUST_RULE=r1"));
  CHECK(has(f, "PGBUST_TARGET=redis"));
}

TEST_CASE("log scopes nest and restore") {
  CHECK(log_fields().source.empty());
  {
    LogScope a(LogFields::of_source("poll"));
    {
      LogScope b(LogFields::of_rule("r"));
      CHECK(log_fields().source == "poll");
      CHECK(log_fields().rule == "r");
    }
    CHECK(log_fields().rule.empty());
  }
  CHECK(log_fields().source.empty());
}

TEST_CASE("the journal sink sends each record with the fields its call knows") {
  JournalCapture j;
  std::string err = stderr_of([] {
    spdlog::info("plain");
    LogScope scope(LogFields::of_rule("task-stats"));
    spdlog::warn("rule {}: widened", "task-stats");
  });
  CHECK(err.empty());  // the journal took every record
  REQUIRE(j.records.size() == 2);
  CHECK(has(j.records[0], "PRIORITY=6"));
  CHECK(has(j.records[0], "MESSAGE=plain"));
  CHECK(has(j.records[0], "SYSLOG_IDENTIFIER=pgbust"));
  CHECK_FALSE(has_key(j.records[0], "PGBUST_RULE"));
  CHECK(has(j.records[1], "PRIORITY=4"));
  CHECK(has(j.records[1], "PGBUST_RULE=task-stats"));
}

TEST_CASE("a source's and a target's session lines carry PGBUST_SOURCE and PGBUST_TARGET") {
  JournalCapture j;
  RetryPolicy policy;
  Session source("notify", policy);
  Session target("redis", policy, Session::Labels{"connecting", "handshake", "ready", true});
  source.log(spdlog::level::warn, "backing off");
  target.log(spdlog::level::err, "OOM");
  REQUIRE(j.records.size() == 2);
  CHECK(has(j.records[0], "PGBUST_SOURCE=notify"));
  CHECK_FALSE(has_key(j.records[0], "PGBUST_TARGET"));
  CHECK(has(j.records[1], "PGBUST_TARGET=redis"));
  CHECK(has(j.records[1], "PRIORITY=3"));
  CHECK_FALSE(has_key(j.records[1], "PGBUST_SOURCE"));
}

TEST_CASE("a record the journal refuses goes to stderr with its <N> priority") {
  JournalCapture j;
  j.result = -2;  // -ENOENT: no journal socket
  std::string err = stderr_of([] { spdlog::error("lost\nsecond line"); });
  CHECK(j.records.size() == 1);
  CHECK(err == "<3>error: lost\n<3>second line\n");
}
