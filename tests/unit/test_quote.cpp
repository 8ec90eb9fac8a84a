// quote_for_log(): values from the database or a payload cannot forge a log line.
#include <doctest/doctest.h>

#include "pgbust/core/quote.hpp"

using pgbust::quote_for_log;

TEST_CASE("quoted escapes quotes, backslashes and every control byte") {
  CHECK(quote_for_log("orders") == "\"orders\"");
  CHECK(quote_for_log("") == "\"\"");
  CHECK(quote_for_log("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(quote_for_log("t\n2026-12-06 [info] forged") == "\"t\\n2026-12-06 [info] forged\"");
  CHECK(quote_for_log(std::string_view("\r\t\x1b[31m\x7f\0", 9)) ==
        "\"\\r\\t\\x1b[31m\\x7f\\x00\"");
  CHECK(quote_for_log("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
}
