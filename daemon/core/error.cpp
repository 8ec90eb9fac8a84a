// Secret masking for anything that prints a connection string or URL.
#include "pgbust/core/error.hpp"

#include <cctype>

namespace pgbust {

std::string mask_conninfo(std::string_view conninfo) {
  // URI form: postgres[ql]://user:password@host/...
  if (conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://")) {
    std::string out(conninfo);
    auto scheme_end = out.find("://") + 3;
    auto at = out.find('@', scheme_end);
    if (at != std::string::npos) {
      auto colon = out.find(':', scheme_end);
      if (colon != std::string::npos && colon < at)
        out.replace(colon + 1, at - colon - 1, "********");
    }
    auto q = out.find("password=");
    if (q != std::string::npos) {
      auto end = out.find('&', q);
      out.replace(q + 9, (end == std::string::npos ? out.size() : end) - q - 9, "********");
    }
    return out;
  }
  // keyword=value form; values may be single-quoted with backslash escapes.
  std::string out;
  std::size_t i = 0;
  while (i < conninfo.size()) {
    auto key_start = i;
    while (i < conninfo.size() && conninfo[i] != '=' &&
           !std::isspace(static_cast<unsigned char>(conninfo[i])))
      ++i;
    std::string_view key = conninfo.substr(key_start, i - key_start);
    while (i < conninfo.size() && std::isspace(static_cast<unsigned char>(conninfo[i]))) ++i;
    if (i >= conninfo.size() || conninfo[i] != '=') {
      out.append(conninfo.substr(key_start, i - key_start));
      continue;
    }
    ++i;  // '='
    while (i < conninfo.size() && std::isspace(static_cast<unsigned char>(conninfo[i]))) ++i;
    auto value_start = i;
    if (i < conninfo.size() && conninfo[i] == '\'') {
      ++i;
      while (i < conninfo.size() && conninfo[i] != '\'') i += (conninfo[i] == '\\') ? 2 : 1;
      if (i < conninfo.size()) ++i;
    } else {
      while (i < conninfo.size() && !std::isspace(static_cast<unsigned char>(conninfo[i]))) ++i;
    }
    out.append(key).append("=");
    if (key == "password")
      out.append("********");
    else
      out.append(conninfo.substr(value_start, i - value_start));
    while (i < conninfo.size() && std::isspace(static_cast<unsigned char>(conninfo[i]))) {
      out.push_back(' ');
      ++i;
    }
  }
  return out;
}

std::string mask_url(std::string_view url) {
  std::string out(url);
  auto scheme = out.find("://");
  if (scheme == std::string::npos) return out;
  auto at = out.find('@', scheme + 3);
  if (at == std::string::npos) return out;
  auto colon = out.find(':', scheme + 3);
  if (colon != std::string::npos && colon < at)
    out.replace(colon + 1, at - colon - 1, "********");
  else
    out.replace(scheme + 3, at - scheme - 3, "********");
  return out;
}

}  // namespace pgbust
