// The PUBLISH message body, built in one place so its exact JSON has one golden test.
#include "pgbust/pipeline/publish.hpp"

#include "pgbust/core/json.hpp"

namespace pgbust {

namespace {

template <typename Strings>
void append_list(std::string& out, const char* name, const Strings& items) {
  out += ",\"";
  out += name;
  out += "\":[";
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += ',';
    out += json::quote(item);
    first = false;
  }
  out += ']';
}

}  // namespace

std::string publish_message(std::string_view source, std::string_view position,
                            const PublishContent& content) {
  std::string msg = "{\"source\":" + json::quote(source) + ",\"position\":" + json::quote(position);
  append_list(msg, "tables", content.tables);
  append_list(msg, "keys", content.keys);
  append_list(msg, "patterns", content.patterns);
  append_list(msg, "revisions", content.revisions);
  msg += std::string(",\"truncated\":") + (content.truncated ? "true" : "false");
  if (content.gap) msg += ",\"gap\":true";
  if (content.flush) msg += ",\"flush\":true";
  msg += "}";
  return msg;
}

}  // namespace pgbust
