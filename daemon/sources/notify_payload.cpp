// NOTIFY payloads: the JSON the triggers of `pgbust setup --notify` send, read into a Payload
// or a precise reason why not (pure: no connection, no logging).
#include "pgbust/sources/notify.hpp"

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

}  // namespace pgbust::notify
