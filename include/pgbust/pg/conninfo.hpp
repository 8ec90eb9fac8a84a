// Describing a libpq conninfo for messages without ever echoing the user's text: what libpq
// parsed (host, port, dbname, user), every other option by keyword with its value masked
// unless it is known harmless, and for text libpq cannot parse only where and why it failed.
#pragma once

#include <libpq-fe.h>

#include <optional>
#include <string>
#include <string_view>

namespace pgbust::pg {

// "host=db.example port=5432 dbname=app user=bob sslmode=require password=********" (URI and
// keyword/value forms alike). A dbname that is itself a connection string (libpq expands it
// when the conninfo is given as dbname) is described the same way, in parentheses; a bare
// word (no '=', not a URI) is the database name the sources would connect to. For text
// libpq cannot parse: "conninfo not understood by libpq: missing "=" after "..." in connection
// info string" -- libpq's own message with every fragment of the conninfo it echoes removed.
std::string describe_conninfo(std::string_view conninfo);

// Why libpq cannot use `conninfo` at all (the describe_conninfo text of a parse failure), or
// nullopt when it can. A bare word is a database name, and nothing means libpq's defaults:
// both are fine. Checked before connecting, so `run` and `check --config` refuse a conninfo
// no retry could fix as a configuration error.
std::optional<std::string> conninfo_problem(std::string_view conninfo);

// A database name as libpq reports it (PQdb), for messages: a value that looks like a
// connection string is described as one instead of printed.
std::string describe_dbname(std::string_view dbname);

// Why a connection from `conninfo` failed, safe to print: when libpq cannot parse the conninfo
// its message would echo the text (passwords included), so this says where parsing failed
// instead; otherwise libpq's error text for `conn`.
std::string connect_error(const PGconn* conn, std::string_view conninfo);

}  // namespace pgbust::pg
