// Quoting for untrusted values in log lines and messages.
#include "pgbust/core/quote.hpp"

namespace pgbust {

namespace {

// The double-quoted form both quote_for_log and quote_ascii write: `escape_high` also writes
// bytes >= 0x80 as \xNN.
std::string double_quoted(std::string_view value, bool escape_high) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(value.size() + 2);
  out.push_back('"');
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f || (escape_high && c >= 0x80)) {
          out += "\\x";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace

std::string quote_for_log(std::string_view value) {
  return double_quoted(value, false);
}

std::string quote_ascii(std::string_view value) {
  return double_quoted(value, true);
}

std::string quote_if_unsafe(std::string_view value) {
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') return quote_for_log(value);
  }
  return std::string(value);
}

}  // namespace pgbust
