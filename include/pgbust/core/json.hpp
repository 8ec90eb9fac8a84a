// A small strict JSON reader (RFC 8259) and a string quoting helper, for `explain`, NOTIFY
// payloads and PUBLISH messages. No dependencies; not meant for huge documents.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgbust/core/error.hpp"

namespace pgbust::json {

// A parsed JSON value. Numbers keep their source text (so 1.50 stays "1.50" and a bigint
// stays exact); objects keep their members in document order.
class Value {
 public:
  enum class Type : unsigned char { Null, Bool, Number, String, Array, Object };

  Value() = default;
  static Value null() { return Value(); }
  static Value boolean(bool b);
  static Value number(std::string text);  // text must be a valid JSON number
  static Value string(std::string s);
  static Value array(std::vector<Value> items);
  static Value object(std::vector<std::pair<std::string, Value>> members);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  bool as_bool() const { return bool_; }
  // The number's JSON text, or the string's decoded UTF-8 text.
  const std::string& text() const { return text_; }
  double as_double() const;  // numbers only; 0 otherwise
  const std::vector<Value>& items() const { return items_; }
  const std::vector<std::pair<std::string, Value>>& members() const { return members_; }
  // The member named `key`, or nullptr (objects only).
  const Value* find(std::string_view key) const;

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  std::string text_;
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> members_;
};

std::string_view to_string(Value::Type t);  // "null", "boolean", "number", ...

// What went wrong and where: `offset` is the byte offset, `line`/`column` are 1-based
// (column counts bytes). what() reads "line L column C (byte B): MESSAGE".
class ParseError : public Error {
 public:
  ParseError(std::string message, std::size_t offset, int line, int column);
  const std::string& message() const { return message_; }
  std::size_t offset() const { return offset_; }
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  std::string message_;
  std::size_t offset_;
  int line_;
  int column_;
};

struct ParseOptions {
  bool allow_duplicate_keys = false;  // strict by default: {"a":1,"a":2} is an error
  std::size_t max_depth = 256;        // nesting limit, so hostile input cannot blow the stack
};

// Parses exactly one JSON value (surrounding whitespace allowed). Strings must be valid
// UTF-8 without raw control characters; \uXXXX escapes are decoded, surrogate pairs
// combined, lone surrogates rejected. Throws ParseError.
Value parse(std::string_view text, const ParseOptions& options = {});

// `s` as a JSON string literal, quotes included: `"`, `\` and control characters escaped
// (\n, \t, ... or \u00XX). Valid UTF-8 passes through; a byte that is not part of valid
// UTF-8 is written as \u00XX (its Latin-1 reading), so the output is always valid JSON.
std::string quote(std::string_view s);
// Appends quote(s) to `out`.
void append_quoted(std::string& out, std::string_view s);

}  // namespace pgbust::json
