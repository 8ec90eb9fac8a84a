// `when:` conditions: an SQL-like boolean expression over row values, parsed once and
// evaluated per change with SQL three-valued logic plus "unknown value" (promise 3).
// Internal to the rule engine.
//
// Grammar (keywords case-insensitive):
//   expr      := or
//   or        := and { OR and }
//   and       := not { AND not }
//   not       := NOT not | primary
//   primary   := '(' expr ')' | operand [ cmp operand | [NOT] IN '(' operand {',' operand} ')'
//                                       | IS [NOT] NULL | IS [NOT] TRUE | IS [NOT] FALSE ]
//   cmp       := '=' | '<>' | '!=' | '<' | '<=' | '>' | '>='
//   operand   := column | new.column | old.column | 'text' ('' is a quote) | number
//                | TRUE | FALSE | NULL
// A bare operand is a predicate: a boolean column or TRUE/FALSE/NULL.
//
// Semantics:
// - Values are PostgreSQL text. Two sides that both read as numbers compare numerically
//   (exactly for plain decimals); against TRUE/FALSE a value reads as a PostgreSQL boolean
//   (t, true, yes, on, 1 / f, false, no, off, 0); otherwise texts compare byte-wise.
// - NULL follows SQL: a comparison with NULL is NULL, NOT NULL is NULL, and a rule fires only
//   when its condition is TRUE.
// - An unqualified column reads the event's row: the new row for insert, the old row for
//   delete; for update the condition is evaluated on the old row and on the new row
//   separately and holds if it holds for either (so a move out of and into a group both fire).
//   new.x on a delete and old.x on an insert are NULL (there is no such row), as in SQL
//   triggers; but a condition that reads only such columns cannot judge the change at all,
//   so for that op the rule fires (the engine checks this, not evaluate()).
// - A value that is not known (old value not in the WAL, TRUNCATE, ...) may be anything:
//   the condition holds if it could be TRUE for some value, so rules never under-fire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/core/change.hpp"
#include "template.hpp"

namespace pgbust::rules::detail {

struct Operand {
  enum class Kind : std::uint8_t { Column, Null, Bool, Number, String };
  Kind kind = Kind::Null;
  ColumnRef ref;  // Column
  bool boolean = false;
  std::string text;  // Number / String
};

enum class CmpOp : std::uint8_t { Eq, Ne, Lt, Le, Gt, Ge };

struct CondNode {
  enum class Kind : std::uint8_t { Cmp, In, IsNull, IsBool, Truth, Not, And, Or };
  Kind kind = Kind::Truth;
  CmpOp op = CmpOp::Eq;
  bool negated = false;       // NOT IN, IS NOT ...
  bool want = true;           // IsBool: IS TRUE / IS FALSE
  Operand a, b;               // Cmp: a op b; In/IsNull/IsBool/Truth: a
  std::vector<Operand> list;  // In
  int left = -1, right = -1;  // Not: left; And/Or: both
};

struct Condition {
  std::string text;
  std::vector<CondNode> nodes;
  int root = -1;
  bool uses_row = false;   // some unqualified column
  bool uses_old = false;   // some old.x
  bool uses_new = false;   // some new.x
  std::vector<int> slots;  // every slot read
};

std::optional<ParseError> parse_condition(std::string_view text, Slots& slots, Condition& out);

// A value as the condition sees it.
struct CondValue {
  enum class State : std::uint8_t { Unknown, Null, Text };
  State state = State::Unknown;
  std::string_view text;
};

// Looks up column values for one evaluation; `image` is the image unqualified columns read.
class ValueSource {
 public:
  virtual ~ValueSource() = default;
  virtual CondValue get(const ColumnRef& ref) const = 0;
};

// The set of outcomes a condition could have given what is unknown: bits True, False, Null.
enum Outcome : std::uint8_t { kTrue = 1, kFalse = 2, kNull = 4, kAny = 7 };

std::uint8_t evaluate(const Condition& c, const ValueSource& values);
inline bool may_be_true(const Condition& c, const ValueSource& values) {
  return (evaluate(c, values) & kTrue) != 0;
}

// -1, 0, 1 when both texts read as numbers, else nullopt. Exact for plain decimals.
std::optional<int> compare_numbers(std::string_view a, std::string_view b);
// PostgreSQL boolean input forms; nullopt when the text is not one.
std::optional<bool> read_bool(std::string_view text);

}  // namespace pgbust::rules::detail
