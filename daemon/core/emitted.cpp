// The payload of pg_logical_emit_message(true, 'pgbust', ...): a small strict JSON object.
#include "pgbust/core/emitted.hpp"

#include "pgbust/core/json.hpp"

namespace pgbust {

namespace {

bool reject(EmittedRejection& why, std::string reason, std::string message) {
  why.reason = std::move(reason);
  why.message = std::move(message);
  return false;
}

// A string or an array of strings (`one_ok`: "publish": "channel"), each non-empty.
bool strings(const json::Value& v, std::string_view member, bool one_ok,
             std::vector<std::string>& out, EmittedRejection& why) {
  if (one_ok && v.is_string()) {
    if (v.text().empty()) return reject(why, "empty_key", std::string(member) + ": empty string");
    out.push_back(v.text());
    return true;
  }
  if (!v.is_array())
    return reject(why, "shape",
                  std::string(member) + ": expected an array of strings, got " +
                      std::string(json::to_string(v.type())));
  std::size_t i = 0;
  for (const auto& item : v.items()) {
    if (!item.is_string())
      return reject(why, "shape",
                    std::string(member) + "[" + std::to_string(i) + "]: expected a string, got " +
                        std::string(json::to_string(item.type())));
    if (item.text().empty())
      return reject(why, "empty_key",
                    std::string(member) + "[" + std::to_string(i) + "]: empty string");
    out.push_back(item.text());
    ++i;
  }
  return true;
}

}  // namespace

std::optional<EmittedInvalidation> parse_emitted(std::string_view content, EmittedRejection& why) {
  if (content.size() > kEmittedMaxBytes) {
    reject(why, "too_large",
           std::to_string(content.size()) + " bytes, more than the limit of " +
               std::to_string(kEmittedMaxBytes));
    return std::nullopt;
  }
  json::Value doc;
  try {
    doc = json::parse(content, json::ParseOptions{.allow_duplicate_keys = false, .max_depth = 8});
  } catch (const json::ParseError& e) {
    reject(why, "json", e.what());
    return std::nullopt;
  }
  if (!doc.is_object()) {
    reject(why, "shape", "expected a JSON object, got " + std::string(json::to_string(doc.type())));
    return std::nullopt;
  }
  EmittedInvalidation out;
  for (const auto& [name, value] : doc.members()) {
    bool ok = true;
    if (name == "delete")
      ok = strings(value, name, false, out.deletes, why);
    else if (name == "delete_pattern")
      ok = strings(value, name, false, out.patterns, why);
    else if (name == "bump")
      ok = strings(value, name, false, out.bumps, why);
    else if (name == "publish")
      ok = strings(value, name, true, out.publish, why);
    else
      ok = reject(why, "shape",
                  "unknown member " + json::quote(name) +
                      " (expected delete, delete_pattern, bump, publish)");
    if (!ok) return std::nullopt;
  }
  const std::size_t items =
      out.deletes.size() + out.patterns.size() + out.bumps.size() + out.publish.size();
  if (items == 0) {
    reject(why, "shape",
           "no action: expected at least one of delete, delete_pattern, bump, publish");
    return std::nullopt;
  }
  if (items > kEmittedMaxItems) {
    reject(why, "too_large",
           std::to_string(items) + " items, more than the limit of " +
               std::to_string(kEmittedMaxItems));
    return std::nullopt;
  }
  return out;
}

}  // namespace pgbust
