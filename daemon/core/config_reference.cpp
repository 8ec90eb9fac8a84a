// pgbust.yaml's keys, documented once (see reference.hpp). Keep in step with config.cpp: the
// unit test test_reference.cpp fails on a key one has and the other lacks.
#include "pgbust/core/reference.hpp"

namespace pgbust::config {

namespace {

// clang-format off
constexpr KeyDoc kKeys[] = {
  {"postgres", "mapping", "", "The PostgreSQL connection.", ""},
  {"postgres.conninfo", "string", "\"\" (libpq's defaults and PG* environment)",
   "The libpq conninfo (key=value or a postgresql:// URI) without a password: use PGPASSFILE, "
   "a service file or peer/certificate authentication; the role needs REPLICATION for the "
   "logical source and SELECT on the rule tables.",
   "\"host=127.0.0.1 dbname=app user=pgbust\""},
  {"sources", "mapping", "logical, with its defaults",
   "Where changes are read from: at least one of logical, notify and poll.", ""},
  {"sources.logical", "mapping", "",
   "Logical replication (pgoutput): the most exact source; needs wal_level=logical.", ""},
  {"sources.logical.slot", "string", "pgbust", "The replication slot.", "pgbust"},
  {"sources.logical.publication", "string", "pgbust",
   "The publication (pgbust setup prints it, with column lists).", "pgbust"},
  {"sources.logical.create_slot", "boolean", "true",
   "Create the slot at start when it is missing.", "true"},
  {"sources.logical.status_interval", "duration", "10s",
   "How often standby status updates are sent to the server.", "10s"},
  {"sources.logical.state_dir", "string", "$STATE_DIRECTORY, else /var/lib/pgbust",
   "Where pgbust records which system and slot it streamed from (SLOT.slot).",
   "/var/lib/pgbust"},
  {"sources.logical.on_gap", "one of: widen, fail, widen_at_start", "widen",
   "A slot that vanished or belongs to another system: re-create it and widen every rule "
   "once, refuse to stream, or also widen at the very first start.", "widen"},
  {"sources.logical.coverage_interval", "duration", "30s",
   "How often a side connection checks that the publication covers every rule table (also at "
   "connect and on reload); an uncovered table makes the verdict degraded and widens its rules "
   "once when covered again.", "30s"},
  {"sources.notify", "mapping", "",
   "LISTEN/NOTIFY, fed by the triggers pgbust setup --notify generates.", ""},
  {"sources.notify.channels", "list of strings", "[pgbust]",
   "The channels to LISTEN on (not empty).", "[pgbust]"},
  {"sources.notify.on_gap", "one of: widen, ignore", "widen",
   "After every (re)connect, whose missed notifications are unknown: widen every rule once, "
   "or ignore the gap.", "widen"},
  {"sources.notify.verify", "boolean", "true",
   "Accept only payloads signed by the triggers pgbust setup --notify generates (HMAC-SHA256 "
   "with a key from pgbust.notify_key); false lets any role that can connect delete keys.",
   "true"},
  {"sources.notify.tables", "list of strings", "[] (every table the rules name)",
   "The schema.table names whose triggers notify: what a gap widens and what setup --notify "
   "creates triggers for.", "[public.orders]"},
  {"sources.poll", "mapping", "",
   "Polling of id/updated_at watermarks, for when neither a slot nor triggers are possible.", ""},
  {"sources.poll.interval", "duration", "2s", "How often each table is polled.", "2s"},
  {"sources.poll.state_dir", "string", "$STATE_DIRECTORY, else /var/lib/pgbust",
   "Where the watermarks are persisted.", "/var/lib/pgbust"},
  {"sources.poll.page_size", "positive integer", "1000", "Rows read per poll query.", "1000"},
  {"sources.poll.tables", "list of mappings", "",
   "The polled tables (at least one).", ""},
  {"sources.poll.tables[].table", "string", "", "The table: schema.table or table (schema public).",
   "public.orders"},
  {"sources.poll.tables[].watermark", "list of strings", "",
   "[id], [updated_at] or [updated_at, id]: the column(s) that grow with every change.",
   "[updated_at, id]"},
  {"sources.poll.tables[].key", "list of strings", "the primary key, looked up",
   "The columns identifying a row.", "[id]"},
  {"sources.poll.tables[].overlap", "duration", "30s",
   "How far back each poll re-reads a time watermark: the longest write transaction plus the "
   "clock skew between writers.", "30s"},
  {"sources.poll.tables[].deletes", "one of: count, none", "count",
   "Detect deletes as a fall in the row count (widening every rule of the table), or not at "
   "all.", "count"},
  {"redis", "mapping, or list of mappings", "",
   "The Redis target, or a list of targets kept in step (each entry takes the keys below).",
   ""},
  {"redis.name", "string", "host:port from the url (the master's name with sentinel)",
   "The target's name in the status line and metrics (target=\"...\"); unique in a list.",
   "eu"},
  {"redis.url", "string", "redis://127.0.0.1:6379/0",
   "redis://[user@]host:port/db, rediss:// for TLS, unix:///path?db=N, or "
   "redis+cluster://host:port,host:port (rediss+cluster:// with TLS) for Redis Cluster.",
   "\"redis://127.0.0.1:6379/0\""},
  {"redis.cluster", "boolean", "false (true for a redis+cluster:// URL)",
   "Redis Cluster: discover the masters from the URL's seed nodes, route each key by its hash "
   "slot, SCAN every master for pattern deletes.", "false"},
  {"redis.password_file", "string", "\"\" (no AUTH)",
   "A file whose first line is the password (never logged); read again before every "
   "connection and on SIGHUP, so a rotated password needs no restart (an unreadable file keeps "
   "the last good password, with an error naming it).",
   "/etc/pgbust/redis-password"},
  {"redis.key_prefix", "string", "\"\"",
   "Prepended to every key, pattern and counter (Django: \":1:\").", "\":1:\""},
  {"redis.connect_timeout", "duration", "2s", "Time allowed to connect: to resolve "
   "the host name (off the event loop), connect, and for TLS complete the handshake.", "2s"},
  {"redis.command_timeout", "duration", "5s",
   "Time allowed for a reply before the connection counts as lost.", "5s"},
  {"redis.stream_maxlen", "positive integer", "10000",
   "Rules with stream: add entries with XADD MAXLEN ~ this (older ones are trimmed).",
   "10000"},
  {"redis.tls", "mapping", "", "TLS settings for a rediss:// URL.", ""},
  {"redis.tls.ca_file", "string", "\"\" (the system CA store)",
   "The CA bundle that signed the server's certificate.", "/etc/pgbust/redis-ca.pem"},
  {"redis.tls.ca_path", "string", "\"\"", "A c_rehash'ed directory of CA certificates.",
   "/etc/ssl/certs"},
  {"redis.tls.cert_file", "string", "\"\"",
   "The client certificate for mutual TLS (with key_file).", "/etc/pgbust/client.pem"},
  {"redis.tls.key_file", "string", "\"\"", "The client certificate's key (with cert_file).",
   "/etc/pgbust/client.key"},
  {"redis.tls.server_name", "string", "the URL's host",
   "The name sent as SNI and verified in the certificate.", "cache.internal"},
  {"redis.tls.verify", "one of: full, ca, none", "full",
   "Verify the chain and the host name, the chain only, or nothing.", "full"},
  {"redis.tls.min_version", "one of: 1.2, 1.3", "OpenSSL's default",
   "The lowest TLS version accepted (quote it: \"1.2\").", "\"1.2\""},
  {"redis.sentinel", "mapping", "",
   "Redis Sentinel: ask these sentinels for the master and follow its failovers; url, "
   "password_file and tls then give the master's scheme, user, password, db and TLS (the URL's "
   "host:port is not used).",
   ""},
  {"redis.sentinel.master", "string", "", "The name the sentinels monitor the master by; required.",
   "mymaster"},
  {"redis.sentinel.addresses", "list of strings", "",
   "host:port of each sentinel ([addr]:port for IPv6), asked in turn; required.",
   "[\"10.0.0.1:26379\", \"10.0.0.2:26379\", \"10.0.0.3:26379\"]"},
  {"redis.sentinel.user", "string", "\"\" (AUTH password only)",
   "The ACL user on the sentinels (needs +sentinel|get-master-addr-by-name, +subscribe, "
   "+ping, +auth and &+switch-master &+promoted-slave).",
   "pgbust"},
  {"redis.sentinel.password_file", "string", "\"\" (no AUTH)",
   "A file whose first line is the sentinels' password (never logged).",
   "/etc/pgbust/sentinel-password"},
  {"redis.sentinel.tls", "mapping", "",
   "Reach the sentinels over TLS, with the same keys as redis.tls.", ""},
  {"redis.sentinel.tls.ca_file", "string", "\"\" (the system CA store)",
   "The CA bundle that signed the sentinels' certificates.", "/etc/pgbust/redis-ca.pem"},
  {"redis.sentinel.tls.ca_path", "string", "\"\"",
   "A c_rehash'ed directory of CA certificates.", "/etc/ssl/certs"},
  {"redis.sentinel.tls.cert_file", "string", "\"\"",
   "The client certificate for mutual TLS (with key_file).", "/etc/pgbust/client.pem"},
  {"redis.sentinel.tls.key_file", "string", "\"\"",
   "The client certificate's key (with cert_file).", "/etc/pgbust/client.key"},
  {"redis.sentinel.tls.server_name", "string", "the sentinel's host",
   "The name sent as SNI and verified in each sentinel's certificate.", "sentinel.internal"},
  {"redis.sentinel.tls.verify", "one of: full, ca, none", "full",
   "Verify the chain and the host name, the chain only, or nothing.", "full"},
  {"redis.sentinel.tls.min_version", "one of: 1.2, 1.3", "OpenSSL's default",
   "The lowest TLS version accepted (quote it: \"1.2\").", "\"1.2\""},
  {"rules", "string", "", "The rules file or rules.d directory (*.yaml, *.yml in name order), "
   "relative to the config file; required.", "rules.d"},
  {"status", "mapping", "", "The status line and the HTTP endpoint.", ""},
  {"status.interval", "duration", "30s",
   "How often the status line is logged (and on every state change).", "30s"},
  {"status.listen", "string", "127.0.0.1:9709",
   "HOST:PORT of /metrics, /healthz and /status; \"\" disables it.", "\"127.0.0.1:9709\""},
  {"status.wal_warn_bytes", "size", "1GB",
   "A slot holding more WAL than this is a warning and degrades /healthz.", "1GB"},
  {"limits", "mapping", "", "Memory bounds.", ""},
  {"limits.max_keys_per_transaction", "positive integer", "100000",
   "Past this many keys in one transaction a rule widens to its pattern.", "100000"},
  {"limits.max_batch_keys", "positive integer", "50000",
   "Keys coalesced into one Redis batch.", "50000"},
  {"limits.max_queued_batches", "positive integer", "4",
   "Batches queued for Redis before reading from PostgreSQL stops (back-pressure).", "4"},
  {"log", "mapping", "", "Logging (to stderr).", ""},
  {"log.level", "one of: trace, debug, info, warn, error, off", "info",
   "The lowest level logged.", "info"},
  {"log.format", "one of: text, json", "text",
   "Text lines, or one {\"time\",\"level\",\"message\"} JSON object per line.", "text"},
  {"log.journal", "one of: auto, yes, no", "auto",
   "auto: when stderr is the journal, log through the journal's native protocol with "
   "priorities and PGBUST_SOURCE, PGBUST_RULE and PGBUST_TARGET fields (<N>-prefixed stderr "
   "lines when it is unreachable); yes: <N>-prefixed stderr lines; no: plain lines.", "auto"},
};
// clang-format on

}  // namespace

std::span<const KeyDoc> keys() {
  return kKeys;
}

}  // namespace pgbust::config
