// The poll source's pure parts: state files (names, text, atomic save, corruption), numeric
// comparison of PostgreSQL text, and the bounded set of rows already invalidated.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <fstream>

#include "pgbust/sources/poll_state.hpp"
#include "test_support.hpp"

using namespace pgbust;
using namespace std::chrono_literals;

namespace {

poll::Watermark sample() {
  poll::Watermark w;
  w.table = "public.tasks";
  w.columns = {"updated_at", "id"};
  w.cursor = {"2024-05-01 10:00:00.123456+00", "42"};
  w.max_id = "42";
  w.count = 1234;
  w.count_max = "41";
  return w;
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("state file names are one safe file per table") {
  CHECK(poll::state_file_name("public", "orders") == "public.orders.watermark");
  CHECK(poll::state_file_name("my schema", "a/b.c") == "my%20schema.a%2Fb%2Ec.watermark");
  CHECK(poll::state_file_name("s", "..") == "s.%2E%2E.watermark");
  CHECK(poll::state_file_name("Sales", "Ünits_2-x") == "Sales.%C3%9Cnits_2-x.watermark");
}

TEST_CASE("a watermark survives serialize and parse, whatever its values") {
  poll::Watermark w = sample();
  CHECK(poll::parse(poll::serialize(w)) == w);
  w.cursor = {"quote \" backslash \\ newline \n tab \t", "-0.5"};
  w.floor = {"7"};
  w.max_id.reset();
  w.count.reset();
  w.count_max.reset();
  CHECK(poll::parse(poll::serialize(w)) == w);
  w.cursor.clear();  // the table had no rows
  CHECK(poll::parse(poll::serialize(w)) == w);
  // The text is readable by a human too.
  std::string text = poll::serialize(sample());
  CHECK(text.find("\"version\": 1") != std::string::npos);
  CHECK(text.find("\"cursor\": [\"2024-05-01 10:00:00.123456+00\", \"42\"]") != std::string::npos);
}

TEST_CASE("a corrupt state text says what is wrong and what was expected") {
  struct Case {
    std::string text;
    const char* error;
  };
  const Case cases[] = {
      {"", "not JSON"},
      {"garbage", "not JSON"},
      {poll::serialize(sample()).substr(0, 40), "not JSON"},  // cut short by a crash elsewhere
      {"[1]", "not a JSON object"},
      {R"({"table":"t","watermark":["id"],"cursor":[]})", "missing \"version\""},
      {R"({"version":2,"table":"t","watermark":["id"],"cursor":[]})", "unsupported \"version\" 2"},
      {R"({"version":"1","table":"t","watermark":["id"],"cursor":[]})", "unsupported \"version\""},
      {R"({"version":1,"watermark":["id"],"cursor":[]})", "missing or empty \"table\""},
      {R"({"version":1,"table":"t","cursor":[]})", "missing \"watermark\""},
      {R"({"version":1,"table":"t","watermark":[],"cursor":[]})", "\"watermark\" is empty"},
      {R"({"version":1,"table":"t","watermark":["id"]})", "missing \"cursor\""},
      {R"({"version":1,"table":"t","watermark":["id"],"cursor":"5"})", "\"cursor\" is not a list"},
      {R"({"version":1,"table":"t","watermark":["id"],"cursor":[5]})",
       "\"cursor\" holds a non-string"},
      {R"({"version":1,"table":"t","watermark":["id"],"cursor":[],"count":-1})",
       "\"count\" is not a whole number"},
      {R"({"version":1,"table":"t","watermark":["id"],"cursor":[],"count":1.5})",
       "\"count\" is not a whole number"},
      {R"({"version":1,"table":"t","watermark":["id"],"cursor":[],"max_id":5})",
       "\"max_id\" is neither"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    try {
      poll::parse(c.text);
      FAIL("parsed");
    } catch (const Error& e) {
      std::string msg = e.what();
      CHECK_MESSAGE(msg.find(c.error) != std::string::npos, msg);
      CHECK_MESSAGE(msg.find("expected a JSON object {\"version\": 1") != std::string::npos, msg);
    }
  }
}

TEST_CASE("save is atomic and load tells missing, good and corrupt files apart") {
  test::TempDir dir;
  auto file = dir.path() / "state" / "public.tasks.watermark";  // the directory is created
  CHECK(poll::load(file).status == poll::Loaded::Status::Missing);

  poll::save(file, sample());
  auto loaded = poll::load(file);
  REQUIRE(loaded.status == poll::Loaded::Status::Ok);
  CHECK(loaded.watermark == sample());
  CHECK_FALSE(std::filesystem::exists(file.string() + ".tmp"));
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  poll::Watermark next = sample();
  next.cursor = {"2024-05-01 10:00:01+00", "43"};
  poll::save(file, next);
  CHECK(poll::load(file).watermark == next);
  CHECK(read(file) == poll::serialize(next));

  dir.write("state/public.tasks.watermark", "{\"version\": 1, \"table\": ");
  auto bad = poll::load(file);
  CHECK(bad.status == poll::Loaded::Status::Corrupt);
  CHECK(bad.error.find(file.string()) == 0);  // names the file first
  CHECK(bad.error.find("not JSON") != std::string::npos);

  // A file that cannot be read (a directory in its place) is corrupt, not missing.
  auto odd = dir.path() / "state" / "odd.watermark";
  std::filesystem::create_directories(odd);
  auto unreadable = poll::load(odd / "");
  CHECK(unreadable.status != poll::Loaded::Status::Ok);

  // Saving where the directory cannot be created names the path.
  dir.write("plainfile", "x");
  CHECK_THROWS_WITH_AS(poll::save(dir.path() / "plainfile" / "t.watermark", sample()),
                       doctest::Contains("plainfile"), Error);
}

TEST_CASE("numbers in PostgreSQL text compare by value, exactly for integers and numerics") {
  struct Case {
    const char* a;
    const char* b;
    int expected;
  };
  const Case cases[] = {
      {"1", "2", -1},
      {"10", "9", 1},
      {"9", "10", -1},
      {"42", "42", 0},
      {"007", "7", 0},
      {"-5", "3", -1},
      {"3", "-5", 1},
      {"-5", "-10", 1},
      {"-0", "0", 0},
      {"1.50", "1.5", 0},
      {"1.05", "1.5", -1},
      {"2", "1.999", 1},
      {"123456789012345678901234567890", "123456789012345678901234567889", 1},
      {"9223372036854775807", "9223372036854775806", 1},
      {"1e3", "999", 1},
      {"1.5e-3", "0.002", -1},
  };
  for (const auto& c : cases) {
    CAPTURE(c.a);
    CAPTURE(c.b);
    CHECK(poll::compare_number(c.a, c.b) == c.expected);
    CHECK(poll::compare_number(c.b, c.a) == -c.expected);
  }
}

TEST_CASE("the seen set skips a row at the same version, and forgets by disuse and by size") {
  TimePoint t0 = Clock::now();
  poll::Seen seen(3, 10s);
  CHECK_FALSE(seen.check_and_add("1", "10:00", t0));
  CHECK(seen.check_and_add("1", "10:00", t0 + 1s));        // same row, same updated_at
  CHECK_FALSE(seen.check_and_add("1", "10:05", t0 + 2s));  // updated again: new version
  CHECK(seen.check_and_add("1", "10:05", t0 + 3s));
  CHECK_FALSE(seen.check_and_add("2", "", t0 + 3s));
  CHECK(seen.check_and_add("2", "", t0 + 4s));
  // Not seen again for the ttl: forgotten, the row would be invalidated again (harmless).
  CHECK_FALSE(seen.check_and_add("2", "", t0 + 15s));
  CHECK(seen.size() == 1);
  // Seen every round (a row staying in the overlap window): kept as long as it is re-read.
  for (auto t = 16s; t < 60s; t += 5s) CHECK(seen.check_and_add("2", "", t0 + t));
  // Past the limit the oldest go first.
  poll::Seen small(2, 1h);
  CHECK_FALSE(small.check_and_add("a", "", t0));
  CHECK_FALSE(small.check_and_add("b", "", t0 + 1s));
  CHECK_FALSE(small.check_and_add("c", "", t0 + 2s));
  CHECK(small.check_and_add("c", "", t0 + 3s));
  CHECK_FALSE(small.check_and_add("a", "", t0 + 4s));  // "a" was evicted
  CHECK(small.size() == 2);
  CHECK(small.check_and_add("c", "", t0 + 5s));  // the most recently seen stay
}

// Regression (issue 12): the temporary file was opened with O_CREAT|O_TRUNC, following a
// symlink planted at its name, so whoever could write the state directory could make pgbust
// truncate and overwrite any file it can write.
TEST_CASE("saving never follows a symlink planted at the temporary file; the directory is 0700") {
  test::TempDir dir;
  auto victim = dir.write("victim", "precious");
  auto file = dir.path() / "state" / "public.tasks.watermark";
  poll::save(file, sample());
  struct stat st {};
  REQUIRE(::stat(file.parent_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);

  std::filesystem::create_symlink(victim, file.string() + ".tmp");
  poll::save(file, sample());
  CHECK(read(victim) == "precious");
  CHECK(poll::load(file).status == poll::Loaded::Status::Ok);
  CHECK_FALSE(std::filesystem::exists(file.string() + ".tmp"));

  // A symlink in place of the state file itself is not read through either.
  std::filesystem::remove(file);
  std::filesystem::create_symlink(victim, file);
  CHECK(poll::load(file).status == poll::Loaded::Status::Corrupt);
}
