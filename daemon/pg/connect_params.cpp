// Connection keywords shared by every libpq connection pgbust opens (see connect_params.hpp).
#include "pgbust/pg/connect_params.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <memory>

namespace pgbust::pg {

namespace {

struct OptionsDeleter {
  void operator()(PQconninfoOption* o) const noexcept { PQconninfoFree(o); }
};

// The `options` keyword of `conninfo` when it is a key=value string or a URI, else of the
// environment (PGOPTIONS), else empty. A plain database name has no options.
std::string user_options(const std::string& conninfo) {
  char* err = nullptr;
  std::unique_ptr<PQconninfoOption, OptionsDeleter> parsed(PQconninfoParse(conninfo.c_str(), &err));
  if (err) PQfreemem(err);  // not a conninfo: libpq will report it when connecting
  if (parsed)
    for (auto* o = parsed.get(); o->keyword; ++o)
      if (std::string_view(o->keyword) == "options" && o->val && *o->val) return o->val;
  const char* env = std::getenv("PGOPTIONS");
  return env ? env : "";
}

}  // namespace

const char* const kRenderSettings[5][2] = {
    {"TimeZone", "UTC"},         {"DateStyle", "ISO"},    {"IntervalStyle", "postgres"},
    {"extra_float_digits", "1"}, {"bytea_output", "hex"},
};

std::string render_options() {
  std::string out;
  for (const auto& s : kRenderSettings) {
    if (!out.empty()) out += ' ';
    out += "-c ";
    out += s[0];
    out += '=';
    out += s[1];
  }
  return out;
}

const char* const kKeepalives[4][2] = {
    {"keepalives", "1"},
    {"keepalives_idle", "10"},
    {"keepalives_interval", "5"},
    {"keepalives_count", "3"},
};

std::string keepalive_options() {
  return "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3";
}

ConnectParams::ConnectParams(const std::string& conninfo,
                             std::vector<std::pair<std::string, std::string>> before,
                             std::vector<std::pair<std::string, std::string>> after) {
  for (const auto& k : kKeepalives) pairs_.emplace_back(k[0], k[1]);
  for (auto& kv : before) pairs_.push_back(std::move(kv));
  pairs_.emplace_back("dbname", conninfo);  // expanded (expand_dbname = 1): it overrides `before`
  for (auto& kv : after) pairs_.push_back(std::move(kv));
  // The user's options follow the keepalive defaults (a later -c wins) and precede the render
  // settings (which always win).
  std::string options = user_options(conninfo);
  pairs_.emplace_back("options", keepalive_options() + " " +
                                     (options.empty() ? "" : options + " ") + render_options());
  for (const auto& [k, v] : pairs_) {
    keys_.push_back(k.c_str());
    values_.push_back(v.c_str());
  }
  keys_.push_back(nullptr);
  values_.push_back(nullptr);
}

}  // namespace pgbust::pg
