// libpq ownership and errors: RAII handles for PGconn / PGresult / PQfreemem buffers, and the
// one place libpq failures become pgbust exceptions (naming the server, never the password).
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <string_view>

#include "pgbust/core/error.hpp"
#include "pgbust/core/text.hpp"

namespace pgbust::pg {

struct ConnDeleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct ResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
struct FreememDeleter {
  void operator()(void* p) const noexcept { PQfreemem(p); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;
using Result = std::unique_ptr<PGresult, ResultDeleter>;
using Buffer = std::unique_ptr<char, FreememDeleter>;

// "host:port dbname user" of a connection, for messages.
std::string describe(const PGconn* conn);
// "host:port" of the server a connection is for (also while it is connecting), for log lines.
std::string host_port(const PGconn* conn);

// libpq's and the server's multi-line messages ("ERROR: ...\nDETAIL: ...\nHINT: ...",
// "...\n\tThis probably means...") as one log line (core/text.hpp).
using pgbust::one_line;

// The server's error text of a connection, or of a failed result, as one line.
std::string error_text(const PGconn* conn);
std::string error_text(const PGresult* res);

// Throws ConnectionError("<what> on <server>: <server text>").
[[noreturn]] void fail(const PGconn* conn, std::string_view what);

// Blocking connect (for commands like check/setup, and tests); throws ConnectionError.
Conn connect(const std::string& conninfo);

// Runs one statement; throws Error unless the result status is COMMAND_OK or TUPLES_OK.
Result exec(PGconn* conn, const std::string& sql, std::string_view what);

// Quote an identifier / literal for SQL text (PQescapeIdentifier / PQescapeLiteral).
std::string quote_ident(PGconn* conn, std::string_view ident);
std::string quote_literal(PGconn* conn, std::string_view literal);

// "0/16B3748" <-> 64-bit LSN.
std::string format_lsn(std::uint64_t lsn);
bool parse_lsn(std::string_view text, std::uint64_t& lsn);

}  // namespace pgbust::pg
