// The daemon's configuration file (/etc/pgbust/pgbust.yaml): declared once, validated with
// file:line:column errors, unknown keys rejected, then overridden by command-line flags.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "pgbust/core/error.hpp"

namespace pgbust::config {

using std::chrono::milliseconds;

// The default state directory: $STATE_DIRECTORY (the first of its paths; systemd sets it from
// the unit's StateDirectory=, so each pgbust@NAME instance gets /var/lib/pgbust/NAME), else
// /var/lib/pgbust.
std::string default_state_dir();

struct Logical {
  std::string slot = "pgbust";
  std::string publication = "pgbust";
  bool create_slot = true;
  milliseconds status_interval{10000};  // standby status updates
  // Where the slot record lives (which system and slot pgbust streamed from); default:
  // default_state_dir().
  std::string state_dir = default_state_dir();
  // A slot that vanished or belongs to another system: widen every rule once, or refuse;
  // widen_at_start also widens at the very first start.
  std::string on_gap = "widen";  // widen | fail | widen_at_start
  // How often a side connection checks that the publication covers the rule tables.
  milliseconds coverage_interval{30000};
  // `pgbust run --dry-run` only (no YAML key): stream from a TEMPORARY slot created for this
  // connection, or from the given slot without ever confirming a position to it.
  bool temporary_slot = false;
  bool never_confirm = false;
};

struct Notify {
  std::vector<std::string> channels{"pgbust"};
  std::string on_gap = "widen";  // widen | ignore
  // "schema.table" of the tables whose triggers notify (the gap policy widens these, `setup
  // --notify` creates triggers for these); empty: every table the rules name.
  std::vector<std::string> tables;
  // Accept only payloads signed by the triggers of `pgbust setup --notify` (HMAC-SHA256 with a
  // key read from pgbust.notify_key); false accepts unsigned payloads (hand-written triggers),
  // and then any role that can connect can make pgbust delete keys.
  bool verify = true;
};

struct PollTable {
  std::string schema = "public";
  std::string table;
  std::vector<std::string> watermark;  // e.g. [id] or [updated_at, id]
  std::vector<std::string> key;        // primary-key columns; default: looked up
  milliseconds overlap{30000};
  std::string deletes = "count";  // count | none: how deletes are detected
  int line = 0;                   // where it was declared, for messages
};

struct Poll {
  milliseconds interval{2000};
  std::string state_dir = default_state_dir();  // watermarks
  std::size_t page_size = 1000;
  std::vector<PollTable> tables;
};

// redis.tls: settings for a rediss:// URL.
struct RedisTls {
  std::string ca_file;  // none (and no ca_path): the system CA store
  std::string ca_path;
  std::string cert_file;  // client certificate for mutual TLS, with key_file
  std::string key_file;
  std::string server_name;      // SNI and the name verified; default: the URL's host
  std::string verify = "full";  // full | ca | none
  std::string min_version;      // "" | 1.2 | 1.3
  bool operator==(const RedisTls&) const = default;
};

// redis.sentinel: ask these sentinels for the master (and follow its failovers). The data
// node's own AUTH, db and TLS stay in the target's url, password_file and tls.
struct RedisSentinel {
  std::string master;                  // the name the sentinels monitor it by
  std::vector<std::string> addresses;  // host:port of each sentinel
  std::string user;                    // ACL user on the sentinels
  std::string password_file;           // the sentinels' password ("": no AUTH)
  std::optional<RedisTls> tls;         // given: the sentinels are reached over TLS
  bool operator==(const RedisSentinel&) const = default;
};

// One Redis target: `redis:` as a mapping is the only one; as a list, each entry is one.
struct Redis {
  // Shown in the status line and as target="..." in metrics; default: derived from the URL
  // (host:port or the socket path), made unique with "-2", "-3", ... Explicit names must be
  // unique.
  std::string name;
  std::string url = "redis://127.0.0.1:6379/0";
  std::string password_file;
  std::optional<RedisTls> tls;
  std::string key_prefix;
  milliseconds connect_timeout{2000};
  milliseconds command_timeout{5000};
  bool cluster = false;  // Redis Cluster (also implied by a redis+cluster:// URL)
  std::optional<RedisSentinel> sentinel;
  std::size_t stream_maxlen = 10000;  // XADD MAXLEN ~ this, for rules with `stream:`
  bool operator==(const Redis&) const = default;
};

struct Status {
  milliseconds interval{30000};
  std::string listen = "127.0.0.1:9709";  // metrics and /healthz; "" disables
  std::int64_t wal_warn_bytes = 1LL
                                << 30;  // slot holding more WAL than this: warn, /healthz degrades
};

struct Limits {
  std::size_t max_keys_per_transaction = 100000;  // past this a rule widens instead of growing
  std::size_t max_batch_keys = 50000;             // coalesced keys per Redis batch
  std::size_t max_queued_batches = 4;             // then back-pressure stops reading sources
};

struct Config {
  std::filesystem::path file;  // where it was read from ("" when built from flags only)
  std::string conninfo;        // libpq conninfo; secrets via libpq's own means
  std::optional<Logical> logical;
  std::optional<Notify> notify;
  std::optional<Poll> poll;
  Redis redis;                    // the first (or only) Redis target
  std::vector<Redis> more_redis;  // the others, when `redis:` is a list
  std::filesystem::path rules;    // file or rules.d directory, relative to the config file
  // `pgbust run --dry-run [--trace FILE]` (no YAML key): count and trace, never write Redis.
  bool dry_run = false;
  std::string dry_run_trace;
  Status status;
  Limits limits;
  std::string log_level = "info";
  std::string log_format = "text";  // text or json (one object per line)
  // "<N>" priority prefixes: auto (when stderr is the journal), yes, no
  std::string log_journal = "auto";
};

// Every Redis target, the first one (Config::redis) first.
std::vector<Redis> redis_targets(const Config& c);

// Thrown with every problem found, one per line, each "FILE:LINE:COL: error: ...".
class ConfigError : public Error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// Reads and validates a config file; throws ConfigError.
Config load(const std::filesystem::path& file);
// The same from text (tests); `file` names it in messages.
Config parse(const std::string& text, const std::filesystem::path& file);

// "500ms", "2s", "1.5m", "1h", or a bare number of seconds.
std::optional<milliseconds> parse_duration(std::string_view text);
// "1024", "512kB", "64MB", "1GB" (powers of 1024).
std::optional<std::int64_t> parse_size(std::string_view text);

}  // namespace pgbust::config
