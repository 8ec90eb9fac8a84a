// The daemon's log output: plain text on stderr for a terminal; under systemd the journal's
// native protocol with priorities and structured fields (or "<N>" sd-daemon priority prefixes
// on stderr), so `journalctl -p warning` and `journalctl PGBUST_RULE=x` filter; or one JSON
// object per line for log shippers.
#pragma once

#include <spdlog/common.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/core/log_fields.hpp"

namespace pgbust::logging {

enum class Format { Text, Json };

struct Options {
  std::string level = "info";  // trace, debug, info, warn, error, off
  Format format = Format::Text;
  // Under journald: "<N>" priority prefixes, and no timestamps in text (journald adds its
  // own). The config's log.journal: auto is journal_stream_is_stderr().
  bool journal = false;
  // Under journald: each record through the journal's native protocol (sd_journal_sendv),
  // with PRIORITY, SYSLOG_IDENTIFIER and the PGBUST_SOURCE/RULE/TARGET fields of the call's
  // LogScope; text format only. When a record cannot be sent, it goes to stderr as `journal`
  // says (so set both).
  bool journal_native = false;
  // Sends one record's fields (tests replace it); empty: sd_journal_sendv. Returns < 0 on
  // failure.
  std::function<int(const std::vector<std::string>&)> journal_send;
};

// True when stderr is the stream systemd connected to the journal: $JOURNAL_STREAM names
// stderr's device and inode ("DEV:INO"). A shell started from a service inherits the variable
// with another stderr, so the variable alone is not enough.
bool journal_stream_is_stderr();

// True when journald's native socket (/run/systemd/journal/socket) exists: sd_journal_sendv
// silently drops records when it does not, so the native protocol is used only then.
bool journal_socket_exists();

// The sd-daemon priority of a spdlog level: critical 2, error 3, warn 4, info 6, debug and
// trace 7.
int journal_priority(spdlog::level::level_enum level);

// One record as written: `time` is the formatted UTC time ("" for none).
std::string format_text(spdlog::level::level_enum level, std::string_view message,
                        std::string_view time, bool journal);
std::string format_json(spdlog::level::level_enum level, std::string_view message,
                        std::string_view time, bool journal);

// One record's journal fields: "PRIORITY=4", "MESSAGE=...", "SYSLOG_IDENTIFIER=pgbust", and
// "PGBUST_SOURCE=...", "PGBUST_RULE=...", "PGBUST_TARGET=..." for the non-empty `fields`.
std::vector<std::string> journal_fields(spdlog::level::level_enum level, std::string_view message,
                                        const LogFields& fields);

// An error printed before logging is set up (an invalid config file): every line with the
// "<3>" (LOG_ERR) prefix when stderr is the journal, as is otherwise.
std::string early_error(std::string_view text);

// Installs the "pgbust" logger writing to stderr as `options` say, as spdlog's default.
void setup(const Options& options);

}  // namespace pgbust::logging
