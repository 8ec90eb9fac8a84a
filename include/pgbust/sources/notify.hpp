// The LISTEN/NOTIFY source: reads the JSON payloads the triggers of `pgbust setup --notify`
// send, turns each into one committed change, and widens after every gap in the stream.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/core/change.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/core/source.hpp"
#include "pgbust/rules/rules.hpp"
#include "pgbust/sources/session_source.hpp"

namespace pgbust::notify {

// The largest payload PostgreSQL's NOTIFY accepts (in the default build) is 7999 bytes.
inline constexpr std::size_t kMaxPayload = 7999;

// One column of a payload's row image: a value as PostgreSQL text, NULL, or unknown (a JSON
// value that is not PostgreSQL text: an array or object).
struct Column {
  std::string name;
  Datum::State state = Datum::State::Value;
  std::string text;
};

struct Image {
  bool present = false;  // the member was there and not null
  std::vector<Column> columns;
};

// A payload, the JSON object
//   {"schema": "public", "table": "orders", "op": "update",
//    "new": {"id": "7", "status": "paid"}, "old": {"id": "7", "status": "open"},
//    "oversized": true}
// "schema" defaults to "public"; "op" is insert, update, delete or truncate (any case);
// row values are strings (PostgreSQL text) or null; numbers keep their JSON text and booleans
// read as t/f (the text of a PostgreSQL boolean), so hand-written triggers using to_jsonb()
// work too. "new" is required for insert and update, "old" for update and delete, except in
// an oversized payload ("oversized": true, also spelled "truncated"), which carries only the
// key columns or no row at all: the columns it lacks are unknown and rules widen for them.
struct Payload {
  std::string schema = "public";
  std::string table;
  Op op = Op::Insert;
  bool oversized = false;
  Image new_row, old_row;
  // Problems that did not make the payload unusable (a column that was an array, ...).
  std::vector<std::string> warnings;
};

struct ParseResult {
  std::optional<Payload> payload;  // set when usable
  std::string error;               // what was wrong, when not usable
  // The table the payload names, when that much could be read (to widen for it).
  std::string schema, table;
};

ParseResult parse_payload(std::string_view text);

// At most `max` bytes of a payload for a log line, as a JSON string (control characters and
// invalid UTF-8 escaped), with "..." appended when it was cut.
std::string payload_prefix(std::string_view text, std::size_t max = 200);

// --- Signed payloads ------------------------------------------------------------------------
// PostgreSQL has no permission on NOTIFY channels: any role that can connect can send any
// payload on any channel. The triggers `pgbust setup --notify` generates therefore sign each
// payload, in a SECURITY DEFINER function, with a key only the trigger owner and pgbust's role
// can read (table pgbust.notify_key):
//   sig1:<key id>:<HMAC-SHA256(key, JSON), 64 lowercase hex digits>:<JSON>
// The key id names the key in pgbust.notify_key (rotation keeps the previous one for a while).
inline constexpr std::string_view kSignatureVersion = "sig1";

// A key as stored in pgbust.notify_key: an id and the key's raw bytes (a secret).
struct SigningKey {
  std::string id;
  std::string secret;
};

enum class Reject {
  None,          // signed with a known key, the signature matches
  Unsigned,      // no "sig1:" envelope
  Malformed,     // a "sig1:" envelope that is not <key id>:<64 hex digits>:<JSON>
  UnknownKey,    // signed with a key id pgbust has not read
  BadSignature,  // the signature does not match
};

// The metric label of a rejection: "unsigned", "malformed_signature", "unknown_key",
// "bad_signature".
const char* reject_label(Reject r);

struct Verified {
  Reject reject = Reject::None;
  std::string_view body;  // the JSON (when reject is None)
  std::string key_id;     // the key id the envelope names (when it could be read)
  // The JSON of a well-formed envelope, verified or not (for sources.notify.verify: false).
  std::string_view envelope_body;
};

// Checks the envelope against `keys` (compared in constant time). Never looks at the JSON.
// The views in the result point into `text`.
Verified verify_payload(std::string_view text, const std::vector<SigningKey>& keys);

// The envelope for `json` signed with `key` (what the triggers produce; for tests).
std::string sign_payload(std::string_view json, const SigningKey& key);

// The bytes `hex` (lowercase or uppercase), or nullopt when it is not hex of even length.
std::optional<std::string> from_hex(std::string_view hex);

}  // namespace pgbust::notify

namespace pgbust {

struct NotifyOptions {
  std::string conninfo;
  config::Notify notify;
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds query_timeout{10000};  // LISTEN and keepalive answers
  std::chrono::milliseconds keepalive{30000};      // a query after this long without traffic
  std::chrono::milliseconds backoff_min{250};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds log_interval{30000};  // repeated errors, at most once per this
  std::size_t max_per_wakeup = 1000;              // notifications handled per loop round
};

struct NotifyCounters {
  std::uint64_t notifications = 0;   // payloads received
  std::uint64_t gaps = 0;            // gap policies applied (each (re)connection)
  std::uint64_t malformed = 0;       // payloads that could not be read
  std::uint64_t oversized = 0;       // payloads with key columns only
  std::uint64_t unknown_tables = 0;  // payloads for tables no rule names
  std::uint64_t widened_tables = 0;  // widen_table calls made
  // Payloads rejected by signature verification (sources.notify.verify), by notify::Reject.
  std::uint64_t rejected[5] = {};
  std::uint64_t key_reads = 0;  // times pgbust.notify_key was read
};

// Phases: connecting -> starting (LISTEN on each channel) -> streaming -> on any failure
// backing off (exponential, with jitter) -> connecting again. Once LISTEN is active after
// every connection, the first as well, the gap policy runs: "widen" widens every rule of
// every table the rules name (only those in sources.notify.tables when it is set), in one
// transaction, because notifications sent while nobody listened are lost; "ignore" only
// logs a warning. Each notification is then one transaction for the sink, positioned by a
// sequence number; NOTIFY has no resume point, so confirm() only tracks progress for the
// status line. While the sink is not accepting, nothing more is read from the server (it
// queues notifications for us), and none already read is dropped.
class NotifySource final : public SessionSource {
 public:
  // Rules reloaded (rules_changed): the tables for the gap policy and the columns expected.
  NotifySource(NotifyOptions options, const rules::RuleSet& rules, ChangeSink& sink);
  ~NotifySource() override;
  const NotifyCounters& counters() const;

 private:
  struct Impl;
};

}  // namespace pgbust
