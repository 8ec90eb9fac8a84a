// NOTIFY payloads: the JSON the triggers of `pgbust setup --notify` send, read into a Payload
// or a precise reason why not (pure: no connection, no logging).
#include "pgbust/sources/notify.hpp"

#include <algorithm>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "pgbust/core/json.hpp"
#include "pgbust/core/quote.hpp"

namespace pgbust::notify {

namespace {

const char* kShape = "{\"schema\", \"table\", \"op\", \"new\": {...}, \"old\": {...}}";

// Reads "new" / "old". Absent or null: not present. False (with `error`) when unusable.
bool read_image(const json::Value* v, const char* member, Image& out, std::string& error,
                std::vector<std::string>& warnings) {
  if (v == nullptr || v->is_null()) return true;
  if (!v->is_object()) {
    error = std::string("\"") + member +
            "\" must be an object of column names to text values, not " +
            std::string(json::to_string(v->type()));
    return false;
  }
  out.present = true;
  out.columns.reserve(v->members().size());
  for (const auto& [name, value] : v->members()) {
    Column c;
    c.name = name;
    switch (value.type()) {
      case json::Value::Type::String:
      case json::Value::Type::Number:
        c.text = value.text();
        break;
      case json::Value::Type::Null:
        c.state = Datum::State::Null;
        break;
      case json::Value::Type::Bool:
        c.text = value.as_bool() ? "t" : "f";
        break;
      case json::Value::Type::Array:
      case json::Value::Type::Object:
        c.state = Datum::State::Unknown;
        warnings.push_back("column " + quote_for_log(name) + " of \"" + member + "\" is a JSON " +
                           std::string(json::to_string(value.type())) +
                           ", not PostgreSQL text: treated as unknown");
        break;
    }
    out.columns.push_back(std::move(c));
  }
  return true;
}

bool non_empty_string(const json::Value* v) {
  return v && v->is_string() && !v->text().empty();
}

}  // namespace

ParseResult parse_payload(std::string_view text) {
  ParseResult r;
  json::Value doc;
  try {
    doc = json::parse(text);
  } catch (const json::ParseError& e) {
    r.error = std::string("not JSON (") + e.what() + "); expected " + kShape;
    return r;
  }
  if (!doc.is_object()) {
    r.error = "expected a JSON object " + std::string(kShape) + ", got " +
              std::string(json::to_string(doc.type()));
    return r;
  }
  Payload p;
  // The table first, so that a later problem can still widen for it.
  if (const json::Value* s = doc.find("schema"); s && !s->is_null()) {
    if (!non_empty_string(s)) {
      r.error = "\"schema\" must be a non-empty string";
      return r;
    }
    p.schema = s->text();
  }
  const json::Value* t = doc.find("table");
  if (!non_empty_string(t)) {
    r.error = t ? "\"table\" must be a non-empty string"
                : "missing \"table\"; expected " + std::string(kShape);
    return r;
  }
  p.table = t->text();
  r.schema = p.schema;
  r.table = p.table;
  const json::Value* op = doc.find("op");
  if (op == nullptr || !op->is_string()) {
    r.error = "missing \"op\" (a string: insert, update, delete or truncate)";
    return r;
  }
  auto parsed = parse_op(op->text());
  if (!parsed) {
    r.error =
        "unknown op " + json::quote(op->text()) + "; expected insert, update, delete or truncate";
    return r;
  }
  p.op = *parsed;
  for (const char* flag : {"oversized", "truncated"}) {
    const json::Value* f = doc.find(flag);
    if (f == nullptr || f->is_null()) continue;
    if (!f->is_bool()) {
      r.error = std::string("\"") + flag + "\" must be true or false";
      return r;
    }
    p.oversized = p.oversized || f->as_bool();
  }
  if (!read_image(doc.find("new"), "new", p.new_row, r.error, p.warnings) ||
      !read_image(doc.find("old"), "old", p.old_row, r.error, p.warnings))
    return r;
  if (!p.oversized) {
    bool need_new = p.op == Op::Insert || p.op == Op::Update;
    bool need_old = p.op == Op::Update || p.op == Op::Delete;
    if (need_new && !p.new_row.present) {
      r.error = "an " + std::string(to_string(p.op)) + " payload needs \"new\" (the new row)";
      return r;
    }
    if (need_old && !p.old_row.present) {
      r.error = std::string("an ") + (p.op == Op::Update ? "update" : "delete") +
                " payload needs \"old\" (the old row)";
      return r;
    }
  }
  r.payload = std::move(p);
  return r;
}

std::string payload_prefix(std::string_view text, std::size_t max) {
  if (text.size() <= max) return json::quote(text);
  std::size_t cut = max;
  // Do not split a UTF-8 sequence: back up over continuation bytes (at most 3).
  for (int i = 0; i < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80; ++i)
    --cut;
  return json::quote(text.substr(0, cut)) + "...";
}

namespace {

constexpr std::size_t kMacBytes = 32;  // SHA-256
constexpr std::size_t kMaxKeyIdBytes = 64;

std::string hmac_sha256(std::string_view secret, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac,
           &len) == nullptr ||
      len != kMacBytes)
    return {};
  return std::string(reinterpret_cast<const char*>(mac), len);
}

bool key_id_char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == '-';
}

}  // namespace

const char* reject_label(Reject r) {
  switch (r) {
    case Reject::None:
      return "none";
    case Reject::Unsigned:
      return "unsigned";
    case Reject::Malformed:
      return "malformed_signature";
    case Reject::UnknownKey:
      return "unknown_key";
    case Reject::BadSignature:
      return "bad_signature";
  }
  return "unknown";
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

Verified verify_payload(std::string_view text, const std::vector<SigningKey>& keys) {
  Verified v;
  std::string prefix = std::string(kSignatureVersion) + ":";
  if (text.substr(0, prefix.size()) != prefix) {
    v.reject = Reject::Unsigned;
    return v;
  }
  std::string_view rest = text.substr(prefix.size());
  auto colon = rest.find(':');
  if (colon == 0 || colon == std::string_view::npos || colon > kMaxKeyIdBytes ||
      !std::all_of(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(colon), key_id_char)) {
    v.reject = Reject::Malformed;
    return v;
  }
  v.key_id = std::string(rest.substr(0, colon));
  rest = rest.substr(colon + 1);
  if (rest.size() < 2 * kMacBytes + 1 || rest[2 * kMacBytes] != ':') {
    v.reject = Reject::Malformed;
    return v;
  }
  auto mac = from_hex(rest.substr(0, 2 * kMacBytes));
  if (!mac) {
    v.reject = Reject::Malformed;
    return v;
  }
  std::string_view body = rest.substr(2 * kMacBytes + 1);
  v.envelope_body = body;
  const SigningKey* key = nullptr;
  for (const auto& k : keys)
    if (k.id == v.key_id) key = &k;
  if (key == nullptr) {
    v.reject = Reject::UnknownKey;
    return v;
  }
  std::string expected = hmac_sha256(key->secret, body);
  if (expected.size() != kMacBytes || CRYPTO_memcmp(expected.data(), mac->data(), kMacBytes) != 0) {
    v.reject = Reject::BadSignature;
    return v;
  }
  v.body = body;
  return v;
}

std::string sign_payload(std::string_view json, const SigningKey& key) {
  static const char* kHex = "0123456789abcdef";
  std::string mac = hmac_sha256(key.secret, json), hex;
  for (unsigned char c : mac) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 15]);
  }
  return std::string(kSignatureVersion) + ":" + key.id + ":" + hex + ":" + std::string(json);
}

}  // namespace pgbust::notify
