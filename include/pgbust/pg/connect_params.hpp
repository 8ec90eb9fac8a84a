// The keyword/value arrays of every connection pgbust opens: the user's conninfo (expanded),
// pgbust's own keywords, and the session settings row values are rendered under.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace pgbust::pg {

// Row values reach pgbust as PostgreSQL's text output, which depends on session settings. So
// that one row gives the same key whichever source read it (walsender, NOTIFY trigger, poll
// query), whatever the server's, database's or role's defaults, and whatever `explain`
// computes, every connection is pinned to these (DESIGN.md, "Values and keys"):
//   TimeZone=UTC  DateStyle=ISO  IntervalStyle=postgres  extra_float_digits=1  bytea_output=hex
extern const char* const kRenderSettings[5][2];

// The `options` value (`-c name=value ...`) that pins kRenderSettings.
std::string render_options();

// TCP keepalives on both ends of every TCP connection pgbust opens, unless the conninfo (or
// its options) says otherwise: pgbust notices a dead server in ~25 s of silence (libpq's
// keepalives_*), and the server notices a dead pgbust host as soon (the tcp_keepalives_*
// settings of the session), so a crashed host's NOTIFY or poll session, and the advisory lock
// it holds, go away and a standby host takes over (README, "Several hosts, one active").
// Unix-domain sockets ignore them.
extern const char* const kKeepalives[4][2];
std::string keepalive_options();  // "-c tcp_keepalives_idle=10 ..."

// Arguments for PQconnectdbParams / PQconnectStartParams with expand_dbname = 1.
// `before` are keywords the conninfo may override (application_name); `after` are keywords
// it may not (replication); kKeepalives come before both. `options` comes last:
// keepalive_options(), the user's own options (from the conninfo, else PGOPTIONS), then
// render_options(), so a user's search_path, statement_timeout or keepalive setting is kept
// while the render settings always win.
class ConnectParams {
 public:
  ConnectParams(const std::string& conninfo,
                std::vector<std::pair<std::string, std::string>> before,
                std::vector<std::pair<std::string, std::string>> after = {});
  ConnectParams(const ConnectParams&) = delete;
  ConnectParams& operator=(const ConnectParams&) = delete;

  const char* const* keys() const { return keys_.data(); }
  const char* const* values() const { return values_.data(); }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
  std::vector<const char*> keys_, values_;
};

}  // namespace pgbust::pg
