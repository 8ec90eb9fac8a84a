// Quoting for values that come from outside (the database, a payload, a user's config) before
// they go into a log line, a status line or an error message.
#pragma once

#include <string>
#include <string_view>

namespace pgbust {

// `value` in double quotes with `"` and `\` backslash-escaped and every control byte (newline,
// carriage return, tab, ESC, DEL, ...) written as \n, \r, \t or \xNN, so no value can end a
// log line, forge another one or drive a terminal. Bytes >= 0x80 pass unchanged (UTF-8).
std::string quote_for_log(std::string_view value);

// As quote_for_log, and bytes >= 0x80 as \xNN too: plain ASCII that redis-cli (and sds's
// quoted strings) read back byte for byte.
std::string quote_ascii(std::string_view value);

// `value` as it is when it has nothing quote_for_log would escape (an id, a timestamp), else
// quote_for_log(value): for values shown bare in a status line.
std::string quote_if_unsafe(std::string_view value);

}  // namespace pgbust
