// `when:` conditions: tokenizer, recursive-descent parser and three-valued evaluator.
#include "condition.hpp"

#include <cctype>
#include <charconv>

namespace pgbust::rules::detail {
namespace {

constexpr int kMaxDepth = 64;
constexpr std::size_t kMaxNodes = 1000;

struct Token {
  enum class Kind : std::uint8_t { End, Ident, String, Number, Op, LParen, RParen, Comma, Dot };
  Kind kind = Kind::End;
  std::size_t at = 0;
  std::string text;  // identifier (folded unless quoted), string contents, number, operator
  bool quoted = false;
};

bool digit(char c) {
  return c >= '0' && c <= '9';
}

class Parser {
 public:
  Parser(std::string_view s, Slots& slots, Condition& out) : s_(s), slots_(slots), c_(out) {}

  std::optional<ParseError> run() {
    if (!next()) return error_;
    if (tok_.kind == Token::Kind::End) return ParseError{tok_.at, "empty condition"};
    int root = or_expr(0);
    if (root < 0) return error_;
    if (tok_.kind != Token::Kind::End)
      return ParseError{tok_.at, "unexpected " + describe(tok_) +
                                     "; expected AND, OR, or the end of the condition"};
    c_.root = root;
    return std::nullopt;
  }

 private:
  std::string_view s_;
  Slots& slots_;
  Condition& c_;
  std::size_t i_ = 0;
  Token tok_;
  std::optional<ParseError> error_;

  bool fail(std::size_t at, std::string msg) {
    if (!error_) error_ = ParseError{at, std::move(msg)};
    return false;
  }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Token::Kind::End:
        return "end of condition";
      case Token::Kind::String:
        return "string '" + t.text + "'";
      case Token::Kind::Number:
        return "number " + t.text;
      case Token::Kind::Ident:
        return (t.quoted ? "name \"" : "'") + t.text + (t.quoted ? "\"" : "'");
      default:
        return "'" + t.text + "'";
    }
  }

  bool keyword(const Token& t, std::string_view kw) const {
    return t.kind == Token::Kind::Ident && !t.quoted && t.text == kw;
  }
  bool is_reserved(const Token& t) const {
    for (std::string_view kw : {"and", "or", "not", "in", "is", "null", "true", "false"})
      if (keyword(t, kw)) return true;
    return false;
  }

  // Reads the next token into tok_.
  bool next() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
    tok_ = Token{};
    tok_.at = i_;
    if (i_ >= s_.size()) return true;
    char c = s_[i_];
    if (c == '(' || c == ')' || c == ',' || c == '.') {
      tok_.kind = c == '('   ? Token::Kind::LParen
                  : c == ')' ? Token::Kind::RParen
                  : c == ',' ? Token::Kind::Comma
                             : Token::Kind::Dot;
      tok_.text = std::string(1, c);
      ++i_;
      if (c == '.' && i_ < s_.size() && digit(s_[i_])) {
        --i_;
        return number();
      }
      return true;
    }
    if (c == '=' || c == '<' || c == '>' || c == '!') {
      std::string op(1, c);
      if (i_ + 1 < s_.size()) {
        char d = s_[i_ + 1];
        if ((c == '<' && (d == '=' || d == '>')) || (c == '>' && d == '=') ||
            (c == '!' && d == '='))
          op.push_back(d);
      }
      if (op == "!") return fail(i_, "unexpected '!'; expected '!=' or '<>'");
      tok_.kind = Token::Kind::Op;
      tok_.text = op;
      i_ += op.size();
      return true;
    }
    if (c == '\'') {
      std::string out;
      std::size_t k = i_ + 1;
      for (;;) {
        if (k >= s_.size()) return fail(i_, "unterminated string: expected a closing \"'\"");
        if (s_[k] == '\'') {
          if (k + 1 < s_.size() && s_[k + 1] == '\'') {
            out.push_back('\'');
            k += 2;
            continue;
          }
          ++k;
          break;
        }
        out.push_back(s_[k++]);
      }
      tok_.kind = Token::Kind::String;
      tok_.text = std::move(out);
      i_ = k;
      return true;
    }
    if (digit(c) ||
        ((c == '-' || c == '+') && i_ + 1 < s_.size() && (digit(s_[i_ + 1]) || s_[i_ + 1] == '.')))
      return number();
    std::optional<ParseError> err;
    bool quoted = false;
    auto id = parse_identifier(s_, i_, err, &quoted);
    if (err) return fail(err->offset, err->message);
    if (!id) return fail(i_, std::string("unexpected '") + c + "' in condition");
    tok_.kind = Token::Kind::Ident;
    tok_.text = std::move(*id);
    tok_.quoted = quoted;
    return true;
  }

  bool number() {
    std::size_t k = i_;
    if (s_[k] == '-' || s_[k] == '+') ++k;
    std::size_t digits = 0;
    while (k < s_.size() && digit(s_[k])) ++k, ++digits;
    if (k < s_.size() && s_[k] == '.') {
      ++k;
      while (k < s_.size() && digit(s_[k])) ++k, ++digits;
    }
    if (digits == 0) return fail(i_, "malformed number");
    if (k < s_.size() && (s_[k] == 'e' || s_[k] == 'E')) {
      std::size_t e = k + 1;
      if (e < s_.size() && (s_[e] == '+' || s_[e] == '-')) ++e;
      if (e >= s_.size() || !digit(s_[e])) return fail(k, "malformed number exponent");
      while (e < s_.size() && digit(s_[e])) ++e;
      k = e;
    }
    if (k < s_.size() &&
        (std::isalpha(static_cast<unsigned char>(s_[k])) || s_[k] == '_' || s_[k] == '.'))
      return fail(k, std::string("unexpected '") + s_[k] + "' after number");
    tok_.kind = Token::Kind::Number;
    tok_.text = std::string(s_.substr(i_, k - i_));
    i_ = k;
    return true;
  }

  int add(CondNode n) {
    if (c_.nodes.size() >= kMaxNodes) {
      fail(tok_.at, "condition too long (more than " + std::to_string(kMaxNodes) + " terms)");
      return -1;
    }
    c_.nodes.push_back(std::move(n));
    return static_cast<int>(c_.nodes.size() - 1);
  }

  int or_expr(int depth) {
    int left = and_expr(depth);
    while (left >= 0 && keyword(tok_, "or")) {
      if (!next()) return -1;
      int right = and_expr(depth);
      if (right < 0) return -1;
      CondNode n;
      n.kind = CondNode::Kind::Or;
      n.left = left;
      n.right = right;
      left = add(std::move(n));
    }
    return left;
  }

  int and_expr(int depth) {
    int left = not_expr(depth);
    while (left >= 0 && keyword(tok_, "and")) {
      if (!next()) return -1;
      int right = not_expr(depth);
      if (right < 0) return -1;
      CondNode n;
      n.kind = CondNode::Kind::And;
      n.left = left;
      n.right = right;
      left = add(std::move(n));
    }
    return left;
  }

  int not_expr(int depth) {
    if (depth > kMaxDepth) {
      fail(tok_.at,
           "condition nested too deeply (more than " + std::to_string(kMaxDepth) + " levels)");
      return -1;
    }
    if (keyword(tok_, "not")) {
      if (!next()) return -1;
      int inner = not_expr(depth + 1);
      if (inner < 0) return -1;
      CondNode n;
      n.kind = CondNode::Kind::Not;
      n.left = inner;
      return add(std::move(n));
    }
    return primary(depth);
  }

  int primary(int depth) {
    if (tok_.kind == Token::Kind::LParen) {
      if (!next()) return -1;
      int inner = or_expr(depth + 1);
      if (inner < 0) return -1;
      if (tok_.kind != Token::Kind::RParen) {
        fail(tok_.at, "expected ')', found " + describe(tok_));
        return -1;
      }
      if (!next()) return -1;
      return inner;
    }
    CondNode n;
    std::size_t operand_at = tok_.at;
    if (!operand(n.a)) return -1;
    if (tok_.kind == Token::Kind::Op) {
      const std::string& op = tok_.text;
      n.kind = CondNode::Kind::Cmp;
      n.op = op == "="                    ? CmpOp::Eq
             : (op == "<>" || op == "!=") ? CmpOp::Ne
             : op == "<"                  ? CmpOp::Lt
             : op == "<="                 ? CmpOp::Le
             : op == ">"                  ? CmpOp::Gt
                                          : CmpOp::Ge;
      if (!next() || !operand(n.b)) return -1;
      return add(std::move(n));
    }
    if (keyword(tok_, "not") || keyword(tok_, "in")) {
      if (keyword(tok_, "not")) {
        n.negated = true;
        if (!next()) return -1;
        if (!keyword(tok_, "in")) {
          fail(tok_.at, "expected IN after NOT, found " + describe(tok_));
          return -1;
        }
      }
      n.kind = CondNode::Kind::In;
      if (!next()) return -1;
      if (tok_.kind != Token::Kind::LParen) {
        fail(tok_.at, "expected '(' after IN, found " + describe(tok_));
        return -1;
      }
      do {
        if (!next()) return -1;
        Operand item;
        if (!operand(item)) return -1;
        n.list.push_back(std::move(item));
      } while (tok_.kind == Token::Kind::Comma);
      if (tok_.kind != Token::Kind::RParen) {
        fail(tok_.at, "expected ',' or ')' in IN list, found " + describe(tok_));
        return -1;
      }
      if (!next()) return -1;
      return add(std::move(n));
    }
    if (keyword(tok_, "is")) {
      if (!next()) return -1;
      if (keyword(tok_, "not")) {
        n.negated = true;
        if (!next()) return -1;
      }
      if (keyword(tok_, "null")) {
        n.kind = CondNode::Kind::IsNull;
      } else if (keyword(tok_, "true") || keyword(tok_, "false")) {
        n.kind = CondNode::Kind::IsBool;
        n.want = keyword(tok_, "true");
      } else {
        fail(tok_.at, "expected NULL, TRUE or FALSE after IS" +
                          std::string(n.negated ? " NOT" : "") + ", found " + describe(tok_));
        return -1;
      }
      if (!next()) return -1;
      return add(std::move(n));
    }
    // A bare operand: a boolean column or literal.
    if (n.a.kind == Operand::Kind::Number || n.a.kind == Operand::Kind::String) {
      fail(tok_.kind == Token::Kind::End ? operand_at : tok_.at,
           "expected a comparison (=, <>, <, <=, >, >=, IN, IS) after " +
               std::string(n.a.kind == Operand::Kind::Number ? "number " + n.a.text
                                                             : "string '" + n.a.text + "'") +
               ", found " + describe(tok_));
      return -1;
    }
    if (tok_.kind != Token::Kind::End && tok_.kind != Token::Kind::RParen &&
        !keyword(tok_, "and") && !keyword(tok_, "or")) {
      fail(tok_.at, "unexpected " + describe(tok_) +
                        "; expected a comparison (=, <>, <, <=, >, >=, IN, IS), AND, OR or ')'");
      return -1;
    }
    n.kind = CondNode::Kind::Truth;
    return add(std::move(n));
  }

  bool operand(Operand& out) {
    const Token t = tok_;
    switch (t.kind) {
      case Token::Kind::String:
        out.kind = Operand::Kind::String;
        out.text = t.text;
        return next();
      case Token::Kind::Number:
        out.kind = Operand::Kind::Number;
        out.text = t.text;
        return next();
      case Token::Kind::Ident:
        break;
      default:
        return fail(t.at,
                    "expected a column, string, number, TRUE, FALSE or NULL, found " + describe(t));
    }
    if (keyword(t, "null") || keyword(t, "true") || keyword(t, "false")) {
      out.kind = keyword(t, "null") ? Operand::Kind::Null : Operand::Kind::Bool;
      out.boolean = keyword(t, "true");
      return next();
    }
    if (is_reserved(t))
      return fail(t.at, "expected a column, string, number, TRUE, FALSE or NULL, found keyword " +
                            t.text + " (quote a column of that name: \"" + t.text + "\")");
    if (!next()) return false;
    Image image = Image::Row;
    std::string column = t.text;
    if (tok_.kind == Token::Kind::Dot) {
      if (t.quoted || (t.text != "new" && t.text != "old"))
        return fail(t.at,
                    "unknown qualifier " + describe(t) + "; expected new.COLUMN or old.COLUMN");
      image = t.text == "new" ? Image::New : Image::Old;
      if (!next()) return false;
      if (tok_.kind != Token::Kind::Ident)
        return fail(tok_.at,
                    "expected a column name after '" + t.text + ".', found " + describe(tok_));
      column = tok_.text;
      if (!next()) return false;
    }
    out.kind = Operand::Kind::Column;
    out.ref = ColumnRef{slots_.intern(column), image};
    bool seen = false;
    for (int s : c_.slots) seen = seen || s == out.ref.slot;
    if (!seen) c_.slots.push_back(out.ref.slot);
    if (image == Image::Row) c_.uses_row = true;
    if (image == Image::Old) c_.uses_old = true;
    if (image == Image::New) c_.uses_new = true;
    return true;
  }
};

// ---- evaluation -------------------------------------------------------------------------

constexpr std::uint8_t kNot[8] = {0,     kFalse,         kTrue,         kTrue | kFalse,
                                  kNull, kFalse | kNull, kTrue | kNull, kAny};

std::uint8_t and3(std::uint8_t a, std::uint8_t b) {
  if (a == kFalse || b == kFalse) return kFalse;
  if (a == kTrue && b == kTrue) return kTrue;
  return kNull;
}
std::uint8_t or3(std::uint8_t a, std::uint8_t b) {
  if (a == kTrue || b == kTrue) return kTrue;
  if (a == kFalse && b == kFalse) return kFalse;
  return kNull;
}
template <typename F>
std::uint8_t combine(std::uint8_t a, std::uint8_t b, F f) {
  std::uint8_t r = 0;
  for (std::uint8_t x = 1; x <= 4; x <<= 1)
    if (a & x)
      for (std::uint8_t y = 1; y <= 4; y <<= 1)
        if (b & y) r |= f(x, y);
  return r;
}

CondValue value_of(const Operand& o, const ValueSource& values) {
  switch (o.kind) {
    case Operand::Kind::Column:
      return values.get(o.ref);
    case Operand::Kind::Null:
      return {CondValue::State::Null, {}};
    case Operand::Kind::Bool:
      return {CondValue::State::Text, o.boolean ? "true" : "false"};
    default:
      return {CondValue::State::Text, o.text};
  }
}

std::uint8_t from_order(int c, CmpOp op) {
  bool r = false;
  switch (op) {
    case CmpOp::Eq:
      r = c == 0;
      break;
    case CmpOp::Ne:
      r = c != 0;
      break;
    case CmpOp::Lt:
      r = c < 0;
      break;
    case CmpOp::Le:
      r = c <= 0;
      break;
    case CmpOp::Gt:
      r = c > 0;
      break;
    case CmpOp::Ge:
      r = c >= 0;
      break;
  }
  return r ? kTrue : kFalse;
}

std::uint8_t compare(const Operand& a, const Operand& b, CmpOp op, const ValueSource& values) {
  CondValue x = value_of(a, values), y = value_of(b, values);
  if (x.state == CondValue::State::Null || y.state == CondValue::State::Null) return kNull;
  if (x.state == CondValue::State::Unknown || y.state == CondValue::State::Unknown) return kAny;
  if (a.kind == Operand::Kind::Bool || b.kind == Operand::Kind::Bool) {
    auto bx = a.kind == Operand::Kind::Bool ? std::optional<bool>(a.boolean) : read_bool(x.text);
    auto by = b.kind == Operand::Kind::Bool ? std::optional<bool>(b.boolean) : read_bool(y.text);
    if (bx && by) return from_order(int(*bx) - int(*by), op);
  } else if (auto n = compare_numbers(x.text, y.text)) {
    return from_order(*n, op);
  }
  int c = x.text.compare(y.text);
  return from_order(c < 0 ? -1 : c > 0 ? 1 : 0, op);
}

std::uint8_t truth(const CondValue& v) {
  if (v.state == CondValue::State::Null) return kNull;
  if (v.state == CondValue::State::Unknown) return kAny;
  auto b = read_bool(v.text);
  if (!b) return kAny;  // not a boolean: cannot tell, so never under-fire
  return *b ? kTrue : kFalse;
}

std::uint8_t eval(const Condition& c, int idx, const ValueSource& values) {
  const CondNode& n = c.nodes[static_cast<std::size_t>(idx)];
  switch (n.kind) {
    case CondNode::Kind::Cmp:
      return compare(n.a, n.b, n.op, values);
    case CondNode::Kind::In: {
      std::uint8_t r = kFalse;
      for (const Operand& item : n.list) {
        r = combine(r, compare(n.a, item, CmpOp::Eq, values), or3);
        if (r == kTrue) break;
      }
      return n.negated ? kNot[r] : r;
    }
    case CondNode::Kind::IsNull: {
      CondValue v = value_of(n.a, values);
      std::uint8_t r = v.state == CondValue::State::Null      ? kTrue
                       : v.state == CondValue::State::Unknown ? (kTrue | kFalse)
                                                              : kFalse;
      return n.negated ? (kNot[r] & (kTrue | kFalse)) : r;
    }
    case CondNode::Kind::IsBool: {
      std::uint8_t t = truth(value_of(n.a, values));
      std::uint8_t r = 0;
      for (std::uint8_t x = 1; x <= 4; x <<= 1)
        if (t & x) r |= (x == (n.want ? kTrue : kFalse)) != n.negated ? kTrue : kFalse;
      return r;
    }
    case CondNode::Kind::Truth:
      return truth(value_of(n.a, values));
    case CondNode::Kind::Not:
      return kNot[eval(c, n.left, values)];
    case CondNode::Kind::And: {
      std::uint8_t l = eval(c, n.left, values);
      if (l == kFalse) return kFalse;
      return combine(l, eval(c, n.right, values), and3);
    }
    case CondNode::Kind::Or: {
      std::uint8_t l = eval(c, n.left, values);
      if (l == kTrue) return kTrue;
      return combine(l, eval(c, n.right, values), or3);
    }
  }
  return kAny;
}

// A plain decimal: sign, integer digits without leading zeros, fraction without trailing zeros.
struct Decimal {
  bool negative = false;
  std::string_view integer, fraction;
};

// 1: plain decimal, 2: a number with an exponent, 0: not a number.
int read_number(std::string_view s, Decimal& d) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) d.negative = s[i++] == '-';
  std::size_t int_at = i;
  while (i < s.size() && digit(s[i])) ++i;
  d.integer = s.substr(int_at, i - int_at);
  if (i < s.size() && s[i] == '.') {
    std::size_t frac_at = ++i;
    while (i < s.size() && digit(s[i])) ++i;
    d.fraction = s.substr(frac_at, i - frac_at);
  }
  if (d.integer.empty() && d.fraction.empty()) return 0;
  int kind = 1;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= s.size() || !digit(s[i])) return 0;
    while (i < s.size() && digit(s[i])) ++i;
    kind = 2;
  }
  if (i != s.size()) return 0;
  while (!d.integer.empty() && d.integer.front() == '0') d.integer.remove_prefix(1);
  while (!d.fraction.empty() && d.fraction.back() == '0') d.fraction.remove_suffix(1);
  if (d.integer.empty() && d.fraction.empty()) d.negative = false;  // -0 == 0
  return kind;
}

int compare_magnitude(const Decimal& a, const Decimal& b) {
  if (a.integer.size() != b.integer.size()) return a.integer.size() < b.integer.size() ? -1 : 1;
  if (int c = a.integer.compare(b.integer)) return c < 0 ? -1 : 1;
  if (int c = a.fraction.compare(b.fraction)) return c < 0 ? -1 : 1;  // no trailing zeros
  return 0;
}

}  // namespace

std::optional<ParseError> parse_condition(std::string_view text, Slots& slots, Condition& out) {
  out = Condition{};
  out.text = std::string(text);
  return Parser(text, slots, out).run();
}

std::uint8_t evaluate(const Condition& c, const ValueSource& values) {
  if (c.root < 0) return kTrue;
  return eval(c, c.root, values);
}

std::optional<int> compare_numbers(std::string_view a, std::string_view b) {
  Decimal x, y;
  int kx = read_number(a, x), ky = read_number(b, y);
  if (kx == 0 || ky == 0) return std::nullopt;
  if (kx == 1 && ky == 1) {
    if (x.negative != y.negative) return x.negative ? -1 : 1;
    int m = compare_magnitude(x, y);
    return x.negative ? -m : m;
  }
  double dx = 0, dy = 0;
  auto start = [](std::string_view s) { return s.data() + (!s.empty() && s[0] == '+' ? 1 : 0); };
  std::from_chars(start(a), a.data() + a.size(), dx);
  std::from_chars(start(b), b.data() + b.size(), dy);
  return dx < dy ? -1 : dx > dy ? 1 : 0;
}

std::optional<bool> read_bool(std::string_view t) {
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  if (t.empty() || t.size() > 5) return std::nullopt;
  char lower[5];
  for (std::size_t k = 0; k < t.size(); ++k)
    lower[k] = (t[k] >= 'A' && t[k] <= 'Z') ? static_cast<char>(t[k] - 'A' + 'a') : t[k];
  std::string_view l(lower, t.size());
  for (std::string_view s : {"t", "true", "y", "yes", "on", "1"})
    if (l == s) return true;
  for (std::string_view s : {"f", "false", "n", "no", "off", "0"})
    if (l == s) return false;
  return std::nullopt;
}

}  // namespace pgbust::rules::detail
