// Describing a conninfo for messages: from what libpq parsed, never the user's text, so no
// password form libpq accepts reaches a log line, the status line, /status or `check`.
#include <doctest/doctest.h>

#include <string>

#include "pgbust/core/error.hpp"
#include "pgbust/pg/conninfo.hpp"
#include "pgbust/pg/libpq.hpp"

using namespace pgbust;

namespace {

// Every way issue 12 found of writing a password that libpq uses (or a text that holds one),
// each with the marker "SECRET" somewhere in it.
const char* const kLeaking[] = {
    // backslash-escaped space: libpq's password is "abc SECRET"
    R"(host=db password=abc\ SECRET dbname=app)",
    // quoted, with an escaped quote
    R"(host=db password='abc\' SECRET' dbname=app)",
    // URI with a repeated ?password= (libpq takes the last)
    "postgres://bob@db/app?password=a&password=SECRET",
    // an expanded dbname with a password inside
    "dbname='host=db password=SECRET'",
    "host=db dbname='postgresql://bob:SECRET@db/app'",
    // a mistyped keyword: libpq refuses it
    "host=db PASSWORD=SECRET",
    "host=db password = SECRET",
    // URI userinfo password, plain and percent-encoded ("SE%43RET" is "SECRET")
    "postgresql://bob:SECRET@db:5432/app",
    "postgres://bob:SE%43RET@db/app",
    "postgres://bob@db/app?password=SE%43RET",
    "postgres://bob@db/app?sslpassword=SECRET&sslmode=require",
    // unparseable: libpq's own message would echo the text
    "host=db password=abc SECRET",
    "host=db password=SECRET'",
    "host=db password='SECRET",
    "postgres://bob:SECRET@[::1",
    "postgres://bob:SECRET@[::1]x/app",
    "postgres://bob:SECRET@db/app?x",
    "postgres://bob@db/app?password=SECRET%zz",
    "postgres://bob@db/app?password=SECRET=1",
    "postgres://bob@db/app?SECRET=1",
    // a password in an option libpq passes to the server, or a passfile path
    "host=db options='-c password=SECRET'",
    "host=db passfile=/home/SECRET/.pgpass",
};

bool leaks(const std::string& text) {
  return text.find("SECRET") != std::string::npos || text.find("SE%43RET") != std::string::npos;
}

}  // namespace

TEST_CASE("describe_conninfo shows where a connection goes and no password in any form") {
  for (std::string c : kLeaking) {
    CAPTURE(c);
    std::string d = pg::describe_conninfo(c);
    CAPTURE(d);
    CHECK_FALSE(leaks(d));
  }
}

TEST_CASE("describe_conninfo: host, port, dbname and user from what libpq parsed") {
  struct Case {
    const char *conninfo, *described;
  };
  const Case cases[] = {
      {"host=db.example port=5433 dbname=app user=bob password=SECRET sslmode=require",
       "host=db.example port=5433 dbname=app user=bob password=******** sslmode=require"},
      {"postgresql://bob:SECRET@db:5432/app?application_name=x",
       "host=db port=5432 dbname=app user=bob password=******** application_name=x"},
      {"dbname='host=db password=SECRET'", "dbname=(host=db password=********)"},
      {"host=/run/postgresql dbname='my db'", "host=/run/postgresql dbname=\"my db\""},
      {"", "(libpq defaults)"},
      {"app", "dbname=app"},  // a bare word: the sources use it as the database name
      {"host=db PASSWORD=SECRET",
       "conninfo not understood by libpq: invalid connection option \"...\""},
      {"host=db password=abc SECRET",
       "conninfo not understood by libpq: missing \"=\" after \"...\" in connection info string"},
      {"postgres://bob:SECRET@[::1]x/app",
       "conninfo not understood by libpq: unexpected character at position 28 in URI (expected "
       "\":\" or \"/\")"},
  };
  for (const auto& c : cases) {
    std::string conninfo = c.conninfo;
    CAPTURE(conninfo);
    CHECK(pg::describe_conninfo(c.conninfo) == c.described);
  }
  CHECK(pg::describe_dbname("app") == "app");
  CHECK(pg::describe_dbname("host=db password=SECRET") == "(host=db password=********)");
}

TEST_CASE("failed connections never show the password, however it was written") {
  for (const char* c : kLeaking) {
    // A host nobody listens on: the connection fails (or the conninfo does not parse).
    std::string conninfo = std::string(c) + " ";
    if (conninfo.starts_with("postgres")) continue;  // URIs: covered by pg::connect below
    conninfo += "host=/nonexistent-pgbust-dir port=1 connect_timeout=1";
    CAPTURE(conninfo);
    std::string what;
    try {
      pg::connect(conninfo);
    } catch (const ConnectionError& e) {
      what = e.what();
    }
    CAPTURE(what);
    CHECK(!what.empty());
    CHECK_FALSE(leaks(what));
  }
  for (const char* c : kLeaking) {
    // The ones libpq cannot parse: PQconnectdb fails at once, without touching the network.
    if (!pg::describe_conninfo(c).starts_with("conninfo not understood")) continue;
    std::string conninfo = c;
    CAPTURE(conninfo);
    pg::Conn conn(PQconnectdb(c));
    std::string why = pg::connect_error(conn.get(), c);
    CAPTURE(why);
    CHECK_FALSE(leaks(why));
  }
}
