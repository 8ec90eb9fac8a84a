// The poll source's watermark files: JSON text, atomic replacement, strict reading.
#include "pgbust/sources/poll_state.hpp"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "pgbust/core/json.hpp"
#include "pgbust/core/state_file.hpp"

namespace pgbust::poll {

namespace {

const char* kExpected =
    "expected a JSON object {\"version\": 1, \"table\": \"schema.name\", \"watermark\": [column, "
    "...], \"cursor\": [text, ...], \"floor\": [text, ...], \"max_id\": text or null, "
    "\"count\": number or null, \"count_max\": text or null}";

void append_list(std::string& out, const std::vector<std::string>& items) {
  out += '[';
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    json::append_quoted(out, items[i]);
  }
  out += ']';
}

void append_optional(std::string& out, const std::optional<std::string>& v) {
  if (v)
    json::append_quoted(out, *v);
  else
    out += "null";
}

[[noreturn]] void bad(const std::string& what) {
  throw Error(what + "; " + kExpected);
}

std::vector<std::string> strings(const json::Value& doc, const char* member, bool required) {
  const json::Value* v = doc.find(member);
  if (v == nullptr || v->is_null()) {
    if (required) bad(std::string("missing \"") + member + "\"");
    return {};
  }
  if (!v->is_array()) bad(std::string("\"") + member + "\" is not a list of strings");
  std::vector<std::string> out;
  for (const auto& item : v->items()) {
    if (!item.is_string()) bad(std::string("\"") + member + "\" holds a non-string value");
    out.push_back(item.text());
  }
  return out;
}

std::optional<std::string> optional_string(const json::Value& doc, const char* member) {
  const json::Value* v = doc.find(member);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_string()) bad(std::string("\"") + member + "\" is neither a string nor null");
  return v->text();
}

}  // namespace

std::string state_file_name(std::string_view schema, std::string_view table) {
  auto encode = [](std::string& out, std::string_view s) {
    static const char* hex = "0123456789ABCDEF";
    for (unsigned char c : s) {
      if (std::isalnum(c) != 0 || c == '_' || c == '-') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
  };
  std::string out;
  encode(out, schema);
  out += '.';
  encode(out, table);
  out += ".watermark";
  return out;
}

std::string serialize(const Watermark& w) {
  std::string out = "{\n  \"version\": " + std::to_string(kStateVersion) + ",\n  \"table\": ";
  json::append_quoted(out, w.table);
  out += ",\n  \"watermark\": ";
  append_list(out, w.columns);
  out += ",\n  \"cursor\": ";
  append_list(out, w.cursor);
  out += ",\n  \"floor\": ";
  append_list(out, w.floor);
  out += ",\n  \"max_id\": ";
  append_optional(out, w.max_id);
  out += ",\n  \"count\": ";
  out += w.count ? std::to_string(*w.count) : "null";
  out += ",\n  \"count_max\": ";
  append_optional(out, w.count_max);
  out += "\n}\n";
  return out;
}

Watermark parse(std::string_view text) {
  json::Value doc;
  try {
    doc = json::parse(text);
  } catch (const json::ParseError& e) {
    bad(std::string("not JSON (") + e.what() + ")");
  }
  if (!doc.is_object()) bad("not a JSON object");
  const json::Value* version = doc.find("version");
  if (version == nullptr) bad("missing \"version\"");
  if (!version->is_number() || version->text() != std::to_string(kStateVersion))
    bad("unsupported \"version\" " + (version->is_number() ? version->text() : "(not a number)") +
        " (this pgbust reads version " + std::to_string(kStateVersion) + ")");
  Watermark w;
  const json::Value* table = doc.find("table");
  if (table == nullptr || !table->is_string() || table->text().empty())
    bad("missing or empty \"table\"");
  w.table = table->text();
  w.columns = strings(doc, "watermark", true);
  if (w.columns.empty()) bad("\"watermark\" is empty");
  w.cursor = strings(doc, "cursor", true);
  w.floor = strings(doc, "floor", false);
  w.max_id = optional_string(doc, "max_id");
  w.count_max = optional_string(doc, "count_max");
  if (const json::Value* c = doc.find("count"); c && !c->is_null()) {
    std::int64_t n = 0;
    const std::string& t = c->text();
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
    if (!c->is_number() || ec != std::errc() || p != t.data() + t.size() || n < 0)
      bad("\"count\" is not a whole number >= 0");
    w.count = n;
  }
  return w;
}

Loaded load(const std::filesystem::path& file) {
  Loaded out;
  try {
    auto text = read_state_file(file);
    if (!text) return out;  // first start
    out.watermark = parse(*text);
    out.status = Loaded::Status::Ok;
  } catch (const Error& e) {
    out.status = Loaded::Status::Corrupt;
    std::string what = e.what();
    out.error = what.rfind("cannot ", 0) == 0 ? what : file.string() + ": " + what;
  }
  return out;
}

void save(const std::filesystem::path& file, const Watermark& w) {
  write_state_file(file, serialize(w));
}

}  // namespace pgbust::poll

namespace pgbust::poll {

namespace {

// -?digits(.digits)?
bool plain_decimal(std::string_view s) {
  std::size_t i = s.starts_with('-') ? 1 : 0;
  std::size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (digits == 0) return false;
  if (i == s.size()) return true;
  if (s[i] != '.') return false;
  ++i;
  std::size_t frac = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac;
  return frac > 0 && i == s.size();
}

// Magnitudes of two plain decimals without sign.
int compare_magnitude(std::string_view a, std::string_view b) {
  auto split = [](std::string_view s, std::string_view& whole, std::string_view& frac) {
    auto dot = s.find('.');
    whole = s.substr(0, dot);
    frac = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
    while (whole.size() > 1 && whole.front() == '0') whole.remove_prefix(1);
  };
  std::string_view aw, af, bw, bf;
  split(a, aw, af);
  split(b, bw, bf);
  if (aw.size() != bw.size()) return aw.size() < bw.size() ? -1 : 1;
  if (int c = aw.compare(bw); c != 0) return c < 0 ? -1 : 1;
  for (std::size_t i = 0; i < std::max(af.size(), bf.size()); ++i) {
    char x = i < af.size() ? af[i] : '0', y = i < bf.size() ? bf[i] : '0';
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

}  // namespace

int compare_number(std::string_view a, std::string_view b) {
  if (plain_decimal(a) && plain_decimal(b)) {
    bool na = a.starts_with('-'), nb = b.starts_with('-');
    if (na) a.remove_prefix(1);
    if (nb) b.remove_prefix(1);
    int mag = compare_magnitude(a, b);
    if (na != nb) return mag == 0 && compare_magnitude(a, "0") == 0 ? 0 : (na ? -1 : 1);
    return na ? -mag : mag;
  }
  long double x = std::strtold(std::string(a).c_str(), nullptr);
  long double y = std::strtold(std::string(b).c_str(), nullptr);
  return x < y ? -1 : (y < x ? 1 : 0);
}

bool Seen::check_and_add(const std::string& key, std::string_view version, TimePoint now) {
  expire(now);
  auto it = map_.find(key);
  if (it != map_.end()) {
    order_.splice(order_.end(), order_, it->second.pos);  // most recently seen
    it->second.at = now;
    if (it->second.version == version) return true;
    it->second.version.assign(version);
    return false;
  }
  order_.push_back(key);
  map_.emplace(key, Entry{std::string(version), now, std::prev(order_.end())});
  if (map_.size() > limit_) {
    map_.erase(order_.front());
    order_.pop_front();
  }
  return false;
}

void Seen::expire(TimePoint now) {
  while (!order_.empty()) {
    auto it = map_.find(order_.front());
    if (it != map_.end() && it->second.at + ttl_ > now) break;
    if (it != map_.end()) map_.erase(it);
    order_.pop_front();
  }
}

}  // namespace pgbust::poll
