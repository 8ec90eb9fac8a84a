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

// Arguments for PQconnectdbParams / PQconnectStartParams with expand_dbname = 1.
// `before` are keywords the conninfo may override (application_name); `after` are keywords
// it may not (replication). `options` comes last: the user's own options (from the conninfo,
// else PGOPTIONS) followed by render_options(), so a user's search_path or statement_timeout
// is kept while the render settings always win.
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
