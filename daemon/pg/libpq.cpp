// libpq helpers: describing servers, turning failures into exceptions, LSN text.
#include "pgbust/pg/libpq.hpp"

#include <cinttypes>
#include <cstdio>

#include "pgbust/pg/connect_params.hpp"
#include "pgbust/pg/conninfo.hpp"

namespace pgbust::pg {

std::string host_port(const PGconn* conn) {
  if (conn == nullptr) return "(no connection)";
  const char* host = PQhost(conn);
  const char* port = PQport(conn);
  std::string out = host && *host ? host : "localhost";
  if (port && *port) out += std::string(":") + port;
  return out;
}

std::string describe(const PGconn* conn) {
  if (conn == nullptr) return "(no connection)";
  std::string out = host_port(conn);
  if (const char* db = PQdb(conn); db && *db) out += " dbname=" + describe_dbname(db);
  if (const char* user = PQuser(conn); user && *user) out += std::string(" user=") + user;
  return out;
}

std::string error_text(const PGresult* res) {
  std::string msg = one_line(res ? PQresultErrorMessage(res) : "out of memory");
  while (!msg.empty() && msg.back() == ' ') msg.pop_back();
  return msg;
}

std::string error_text(const PGconn* conn) {
  std::string msg = one_line(conn ? PQerrorMessage(conn) : "out of memory");
  while (!msg.empty() && msg.back() == ' ') msg.pop_back();
  return msg;
}

void fail(const PGconn* conn, std::string_view what) {
  throw ConnectionError(std::string(what) + " on " + describe(conn) + ": " + error_text(conn));
}

Conn connect(const std::string& conninfo) {
  ConnectParams params(conninfo, {});
  Conn conn(PQconnectdbParams(params.keys(), params.values(), 1));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK)
    throw ConnectionError("cannot connect to PostgreSQL (" + describe_conninfo(conninfo) +
                          "): " + connect_error(conn.get(), conninfo));
  return conn;
}

Result exec(PGconn* conn, const std::string& sql, std::string_view what) {
  Result res(PQexec(conn, sql.c_str()));
  auto st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string text = res ? PQresultErrorMessage(res.get()) : error_text(conn);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    if (PQstatus(conn) != CONNECTION_OK)
      throw ConnectionError(std::string(what) + " on " + describe(conn) + ": " + text);
    throw Error(std::string(what) + " on " + describe(conn) + ": " + text);
  }
  return res;
}

std::string quote_ident(PGconn* conn, std::string_view ident) {
  Buffer b(PQescapeIdentifier(conn, ident.data(), ident.size()));
  if (!b) fail(conn, "quoting an identifier");
  return b.get();
}

std::string quote_literal(PGconn* conn, std::string_view literal) {
  Buffer b(PQescapeLiteral(conn, literal.data(), literal.size()));
  if (!b) fail(conn, "quoting a literal");
  return b.get();
}

std::string format_lsn(std::uint64_t lsn) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
                static_cast<unsigned>(lsn & 0xffffffffu));
  return buf;
}

bool parse_lsn(std::string_view text, std::uint64_t& lsn) {
  unsigned hi = 0, lo = 0;
  std::string s(text);
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%X/%X%n", &hi, &lo, &consumed) != 2 ||
      consumed != static_cast<int>(s.size()))
    return false;
  lsn = (static_cast<std::uint64_t>(hi) << 32) | lo;
  return true;
}

}  // namespace pgbust::pg
