// The Redis target: a non-blocking, pipelined RESP connection (hiredis for the protocol, our
// own socket) and the applier that turns a batch of invalidations into idempotent commands.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/core/applier.hpp"
#include "pgbust/core/loop.hpp"

struct redisReader;  // hiredis (read.h / hiredis.h), kept out of this header
struct redisReply;
struct ssl_st;  // OpenSSL's SSL and SSL_CTX, kept out of this header
struct ssl_ctx_st;

namespace pgbust {
class Lookup;  // core/resolver.hpp
}

namespace pgbust::redis {

// TLS settings for a rediss:// URL (redis.tls in the config).
struct TlsOptions {
  bool configured = false;  // redis.tls was given: then the URL must be rediss://
  std::string ca_file;      // PEM bundle of trusted CAs; none with ca_path: the system store
  std::string ca_path;      // a c_rehash'ed directory of CA certificates
  std::string cert_file;    // client certificate (mutual TLS), PEM; needs key_file
  std::string key_file;
  std::string server_name;  // SNI and the name checked; default: the URL's host
  // full: chain and host name; ca: chain only; none: no verification (encryption only).
  std::string verify = "full";
  std::string min_version;  // "1.2" or "1.3"; "" is OpenSSL's default
};

// Redis Sentinel (redis.sentinel in the config): where to ask for the master, and how to
// authenticate to the sentinels (the data node's own AUTH and TLS stay in Options::url,
// password_file and tls).
struct SentinelOptions {
  std::string master;                  // the monitored master's name; "" means no Sentinel
  std::vector<std::string> addresses;  // "host:port" ("[v6]:port") of each sentinel
  std::string user;                    // ACL user on the sentinels ("": AUTH password only)
  std::string password_file;           // the sentinels' password ("": no AUTH)
  TlsOptions tls;                      // tls.configured: the sentinels are reached over TLS
};

struct Options {
  std::string name;  // the target's name in status lines and metrics (config: redis.name)
  // redis://[[user]:password@]host[:port][/db], rediss://... (TLS, see tls), or
  // unix:///path/to/socket[?db=N]
  std::string url = "redis://127.0.0.1:6379/0";
  std::string password_file;  // first line is the password; overrides a password in the URL
  TlsOptions tls;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{5000};
  // An idle connection is PINGed this often, so an outage is noticed (and /healthz degrades)
  // even when no invalidation is due.
  std::chrono::milliseconds ping_interval{2000};
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{5000};
  std::size_t max_in_flight = 1024;   // commands sent and not yet answered
  std::size_t scan_count = 1000;      // SCAN ... COUNT
  std::size_t unlink_chunk = 512;     // keys per UNLINK
  std::size_t stream_maxlen = 10000;  // XADD stream MAXLEN ~ this
  // Redis Cluster (also implied by a redis+cluster:// or rediss+cluster:// URL, which may
  // list several seed nodes: redis+cluster://host:port,host:port). See ClusterTarget.
  bool cluster = false;
  // Ask these sentinels where the master is and follow its failovers (see SentinelTarget);
  // url then gives the scheme, user, password and db, its host:port is not used.
  SentinelOptions sentinel;
  // While Redis is unreachable (or a batch keeps failing), the error is logged when it starts
  // and then at most once per this interval, with how long it has lasted.
  std::chrono::milliseconds log_interval{30000};
};

// Where to connect, parsed from Options::url (+ password_file).
struct Endpoint {
  bool unix_socket = false;
  bool tls = false;  // rediss://
  std::string host;  // TCP: name or address (IPv6 without brackets)
  int port = 6379;
  std::string path;  // unix socket path
  int db = 0;
  std::string user;      // ACL user for AUTH (empty: AUTH password only)
  std::string password;  // empty: no AUTH. Never logged.
  // "127.0.0.1:6379 db 0", "[::1]:6379 db 2 (TLS)", "/run/redis.sock db 0": never the password.
  std::string describe() const;
};

// Parses redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or
// unix://[[user]:password@]/path[?db=N] (user and password may be %-encoded). Throws
// pgbust::Error naming the (masked) URL and what was expected.
Endpoint parse_url(std::string_view url);

// The password in a password file: its first line without the line ending. Throws
// pgbust::Error naming the file when it cannot be read or is empty.
// "${CREDENTIALS_DIRECTORY}/name" (or "$CREDENTIALS_DIRECTORY/name") is a credential that
// systemd's LoadCredential= put in that directory.
std::string read_password_file(const std::string& path);

// `path` with a leading ${CREDENTIALS_DIRECTORY}/ replaced by the environment's value; throws
// pgbust::Error when it is named but not set.
std::string credentials_path(const std::string& path);

// The endpoint for `options`: parse_url(options.url), with the password_file's password
// (when set) replacing any password in the URL; checks that TLS settings go with rediss://
// and that the options are usable. Throws pgbust::Error. This is all the validation a Target
// does, so `pgbust run` and `pgbust check --config` both validate with it.
Endpoint resolve_endpoint(const Options& options);

// Options::password_file read again, so a rotated password takes effect without a restart:
// Target re-reads it before every connect (the AUTH of the new connection uses it) and on
// reload (SIGHUP).
class PasswordFile {
 public:
  enum class Outcome : std::uint8_t { None, Unchanged, Changed, Failed };
  // Reads options.password_file (None when it is not set) into ep.password. Failed: the file
  // is unreadable or empty; ep.password keeps the last good password and error() says which
  // file and why (never the password).
  Outcome refresh(const Options& options, Endpoint& ep);
  const std::string& error() const { return error_; }  // of the latest refresh ("" if none)

 private:
  std::string error_;
};

// A URL split where the userinfo ends; parse_url and mask_url both use it, so a password is
// masked exactly where it is read from. redis:// (and other schemes): the userinfo runs to
// the last '@'. unix://: to the first "@/" (else the last '@') unless the path comes first.
struct UrlParts {
  enum Scheme : std::uint8_t { Tcp, Tls, Unix, Other } scheme = Other;
  std::string_view prefix;                   // "redis://" as written ("" without "://")
  std::optional<std::string_view> userinfo;  // "user:password", without the '@'
  std::string_view rest;                     // host[:port][/db] or /path[?db=N]
};
UrlParts split_url(std::string_view url);

// `url` with the password (or a userinfo without ':', which is often one) as "********".
std::string mask_url(std::string_view url);

enum class State : std::uint8_t { Disconnected, Connecting, Handshake, Ready, BackingOff };
std::string_view to_string(State s);

using pgbust::Batch;

struct Stats {
  std::uint64_t commands = 0;  // commands answered
  std::uint64_t errors = 0;    // error replies and failed connections
  // Error replies by (class, command): ("persistent", "SET NX"), ("transient", "UNLINK"), ...
  // Failed connections are the rest of `errors`.
  std::map<std::pair<std::string, std::string>, std::uint64_t> errors_by_class;
  std::uint64_t keys_deleted = 0;  // sum of UNLINK replies
  std::uint64_t unlinks = 0;       // keys asked to be unlinked (existing or not)
  std::uint64_t patterns = 0;      // pattern deletes completed (each batch's, as its pass ends)
  // Keyspace passes: one SCAN stream serves every pattern pending when it starts.
  std::uint64_t passes = 0;             // passes completed
  std::uint64_t pass_keys_scanned = 0;  // keys SCAN returned to passes
  std::uint64_t pass_keys_deleted = 0;  // keys removed by passes' UNLINKs
  bool pass_running = false;            // now: a pass is under way
  std::uint64_t pass_scanned = 0;       // now: keys the running pass has scanned
  std::uint64_t pass_dbsize = 0;        // now: DBSIZE when it started (0: unknown)
  std::size_t pass_patterns = 0;        // patterns of the running (or last) pass
  std::size_t scan_count = 0;           // SCAN COUNT now (adapts to the server's speed)
  std::uint64_t bumps = 0;
  std::uint64_t publishes = 0;
  std::uint64_t stream_entries = 0;  // XADDs applied
  std::uint64_t reconnects = 0;
  std::uint64_t failovers = 0;      // Sentinel: master changes followed (see SentinelTarget)
  std::size_t failing_batches = 0;  // now: batches set aside after persistent errors
};

// Adds `from`'s counters (what was counted since start, not the "now" fields) to `to`: for a
// target made of several Targets (a cluster's masters, a Sentinel's masters one after another).
void add_counters(Stats& to, const Stats& from);

// What a Redis target looks like to the daemon, telemetry and check: a single node (Target) or
// a cluster (ClusterTarget, cluster.hpp). attach() registers every socket it needs with the loop
// (a cluster adds and removes node connections as the topology changes).
class AnyTarget : public Pollable, public Applier {
 public:
  virtual State state() const = 0;
  bool connected() const { return state() == State::Ready; }
  virtual const Stats& stats() const = 0;
  virtual std::string last_error() const = 0;
  virtual std::string describe() const = 0;
  // Options::name: the target's name in status lines and metrics.
  virtual std::string name() const = 0;
  // What the last handshake saw: ROLE's answer ("master", "replica"; "cluster" for a
  // cluster; "" before the first connection or when ROLE is refused), whether the target
  // uses TLS (rediss://) and the negotiated protocol ("TLSv1.3"; "" for plain TCP or before
  // the handshake).
  virtual std::string role() const = 0;
  virtual bool tls() const = 0;
  virtual std::string tls_version() const = 0;
  virtual std::size_t queued() const = 0;  // batches not yet completed
  virtual void attach(Loop& loop) = 0;
  virtual void detach(Loop& loop) = 0;
  virtual void close() noexcept = 0;
  // Called with each keyspace pass's duration as it ends (for a histogram; a cluster: every
  // master's passes).
  virtual void on_pass(std::function<void(double seconds)> observe) = 0;
  // Reload (SIGHUP): read the password_file again now (it is also read before every connect);
  // an unreadable or empty file is logged as an error naming it, and the last good password
  // stays in use. A connection that is up stays up; a new password is used from the next one.
  virtual void reread_password() {}
};

// A single Target, a ClusterTarget when options.cluster is set or the URL is
// redis+cluster:// / rediss+cluster://, or a SentinelTarget when options.sentinel.master is
// set. Throws pgbust::Error as their constructors do.
std::unique_ptr<AnyTarget> make_target(const Options& options);

// Hooks a cluster client uses to run one Target per node (see ClusterTarget).
struct Redirected {
  enum What : std::uint8_t { Delete, Bump, Stream } what;
  std::string_view error;         // "MOVED 3999 127.0.0.1:6381", "ASK ...", "TRYAGAIN ..."
  std::vector<std::string> keys;  // the command's keys (UNLINK), the bump's key, or the
                                  // stream and its message (XADD)
  std::uint64_t tag = 0;          // PartFlags::tag of the batch the command belonged to
};
struct PartFlags {
  bool asking = false;       // send ASKING before each command (an ASK redirection)
  bool single_keys = false;  // one key per UNLINK (a slot being migrated answers TRYAGAIN to
                             // a multi-key command that finds only some of its keys)
  std::uint64_t tag = 0;     // handed back in Redirected
};

// Applies batches pipelined on one connection, retrying across reconnects until done.
// Plugs into the event loop as a Pollable.
//
// Connection phases: Disconnected -> Connecting (non-blocking connect and, for rediss://, the
// TLS handshake, within connect_timeout) -> Handshake (AUTH, SELECT, CLIENT SETNAME pgbust,
// pipelined) -> Ready; any failure ->
// BackingOff (exponential from backoff_min to backoff_max, with jitter) -> Connecting.
//
// Batches start in the order queued and run side by side. Pattern deletes are off the
// critical path: a batch's patterns go to a keyspace pass (one SCAN cursor stream, matched
// client-side against every pattern pending when the pass started; a pattern arriving during
// a pass joins the next one), while later batches' exact deletes, bumps, publishes and stream
// entries go on. SCAN COUNT adapts so each SCAN stays short on the server. Within a batch:
// exact UNLINKs, then its pass, then bumps (so a widened bump deletes `rev:...:*` before it
// INCRs the new counter), then, once all of that is answered, publishes, then stream entries
// (XADD); its done() runs after that. A bump whose key an earlier batch's unfinished pass may
// delete waits for that pass too. done() may thus run for a later batch first (Applier allows
// it; the pipeline confirms in commit order), and a later batch's message or stream entry may
// be sent before an earlier one's whose pass is still running: each still follows everything
// of its own transaction.
//
// Failure semantics (promise 2): a broken connection, a command unanswered for
// command_timeout, or a transient error reply (LOADING, BUSY, READONLY, ...; see errors.hpp)
// abandons what was sent; the connection is closed and every batch not done is applied again
// from its start after reconnecting (a pass under way restarts from cursor 0, and no batch
// waiting on it completes before a whole pass has run). A persistent error reply (OOM,
// NOPERM, unknown command, ...) sets the batch aside instead (a pass command's: every batch
// in that pass): it is retried after a delay growing from backoff_min to backoff_max, without
// its deletes when those all succeeded, while later batches are applied, so one failing
// command does not stop every later invalidation. done() is never called for a batch with a
// failed command. Errors are logged (with the server, Redis's own text and their class) when
// they start and then every log_interval while they last, and counted in stats().errors and
// stats().errors_by_class, so a command that keeps failing never wedges silently.
//
// Bumps: `SET key <now in µs since the epoch> NX` then `INCR key`. A counter that was evicted
// (or never existed) restarts from the current time in microseconds, above any value it held
// before unless it was bumped more than a million times a second or the clock went back, so
// readers never see an old revision again. If INCR fails because the key holds something
// that is not a counter (WRONGTYPE, "not an integer", overflow) that command can never
// succeed: the key is UNLINKed and re-seeded (SET NX + INCR) once within the attempt, with a
// warning naming the key. This still invalidates (the value changes to one never used).
class Target : public AnyTarget {
 public:
  // Throws pgbust::Error for a bad URL, an unreadable password_file or unusable options.
  // Connects on the first loop round (so state() says early whether Redis is there).
  explicit Target(Options options);
  // One node of a cluster: `endpoint` instead of options.url (TLS and AUTH as in options).
  Target(Options options, Endpoint endpoint);
  ~Target() override;

  // --- cluster hooks (ClusterTarget) ---
  // Called for an UNLINK, SET NX or INCR answered MOVED, ASK, TRYAGAIN or CLUSTERDOWN; true:
  // the caller takes the command's keys over, and the command counts as done here. A keyspace
  // pass's UNLINK is handed over once per batch of the pass whose patterns match some of its
  // keys (those keys, that batch's tag).
  void on_redirect(std::function<bool(const Redirected&)> hook);
  // apply() with cluster flags.
  void apply(Batch batch, std::function<void()> done, PartFlags flags);
  // Sends `argv` once the connection is ready (outside any batch); `reply` gets the reply, or
  // nullptr when the connection is lost (or closed) first.
  void query(std::vector<std::string> argv, std::function<void(const redisReply*)> reply);

  // Queue a batch; `done` runs (from the loop, never inside apply) once every command of it
  // has succeeded. Batches are started in the order they were queued; one waiting for a
  // keyspace pass, or set aside, may complete after later ones (see above); an empty batch
  // completes once every earlier batch has (or was set aside), even while Redis is down.
  void apply(Batch batch, std::function<void()> done) override;
  std::size_t queued() const override;  // batches not yet completed
  // Every queued batch is set aside after a persistent error and not yet due, or waits only
  // for a keyspace pass (or none is queued): a batch handed over now starts at once.
  bool idle() const override;
  void on_pass(std::function<void(double seconds)> observe) override;
  State state() const override;
  const Stats& stats() const override;
  std::string last_error() const override;  // the latest failure ("" if none), as in the log
  std::string describe() const override;    // "127.0.0.1:6379 db 0" (never the password)
  void attach(Loop& loop) override { loop.add(this); }
  void detach(Loop& loop) override { loop.remove(this); }
  std::string name() const override;
  std::string role() const override;
  bool tls() const override;
  std::string tls_version() const override;

  const Endpoint& endpoint() const;  // holds the password: never log it

  // Pollable
  int fd() const override;
  short events() const override;
  void on_ready(short revents) override;
  TimePoint deadline() const override;
  void on_timer(TimePoint now) override;

  // Closes the connection and stops reconnecting (shutdown); idempotent. Batches still
  // queued stay queued and their done() is never called.
  void close() noexcept override;
  void reread_password() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What `pgbust check --redis` found: whether the configured user may run what pgbust sends.
struct AccessReport {
  std::string server;                // Endpoint::describe()
  std::string user;                  // the ACL user ("default" when the URL names none)
  std::string method;                // "ACL DRYRUN" or "probes"
  std::vector<std::string> allowed;  // commands as given ("UNLINK", "PUBLISH to inval")
  std::vector<std::string> refused;  // "UNLINK: <the server's reason>"
  std::vector<std::string> grants;   // what ACL SETUSER needs to add: "+unlink", "&inval"
};

// Connects as `run` would (TLS, AUTH, SELECT; blocking, within connect_timeout and
// command_timeout per step) and checks that the user may run each command (an argv with
// sample arguments): with ACL DRYRUN where the server offers it to this user, else by
// running harmless probes (UNLINK/SCAN/INCR of a key that does not exist, ...). Throws
// pgbust::Error naming the server and what failed (connect, TLS, AUTH as an authentication
// problem, SELECT), never the password.
AccessReport check_access(const Options& options,
                          const std::vector<std::vector<std::string>>& commands);

// The protocol and socket layer under Target, exposed for tests. Not for other subsystems.
namespace detail {

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept;
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// Appends one command in RESP argv form (binary-safe; what redisFormatCommandArgv writes).
void append_command(std::string& out, std::span<const std::string_view> argv);
void append_command(std::string& out, std::initializer_list<std::string_view> argv);

// Incremental RESP reply parser (hiredis redisReader): feed it bytes as they arrive.
class Reader {
 public:
  Reader();
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  void feed(std::string_view bytes);  // throws ConnectionError on a reader failure
  // The next complete reply, or nullptr until more bytes arrive. Throws ConnectionError
  // naming hiredis's text on a protocol error (the stream is then unusable).
  Reply next();

 private:
  struct Deleter {
    void operator()(redisReader* r) const noexcept;
  };
  std::unique_ptr<redisReader, Deleter> reader_;
};

// An owned file descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// The TLS settings of one target, loaded once (CA store, client certificate); every
// connection starts a fresh session from it (no session resumption).
class TlsContext {
 public:
  // Throws pgbust::Error naming the file or setting that cannot be used.
  TlsContext(const TlsOptions& options, const Endpoint& endpoint);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  ssl_ctx_st* get() const { return ctx_; }
  const std::string& server_name() const { return server_name_; }
  const std::string& verify() const { return verify_; }

 private:
  ssl_ctx_st* ctx_ = nullptr;
  std::string server_name_;
  std::string verify_;
};

// A non-blocking client socket to one endpoint, with its output buffer and reply reader;
// with a TlsContext the bytes go through a TLS session (handshake while connecting()).
// Every failure throws ConnectionError("<what failed>: <system or TLS text>"); the caller
// (Target) prefixes the server's name and its phase.
class Conn {
 public:
  // Starts a non-blocking connect to the first address that does not fail at once. A host
  // name is first resolved off the loop (core/resolver.hpp): meanwhile connecting() and
  // resolving() are true, fd() is the lookup's and connect_events() is POLLIN.
  explicit Conn(const Endpoint& endpoint, const TlsContext* tls = nullptr);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  int fd() const;
  // The TCP connect or the TLS handshake is under way.
  bool connecting() const { return resolving_ || connecting_ || handshaking_; }
  bool resolving() const { return resolving_; }      // the host name is being looked up
  bool handshaking() const { return handshaking_; }  // TLS handshake not finished
  bool connecting_tcp() const { return resolving_ || connecting_; }
  short connect_events() const;  // poll events finish_connect() waits for
  // Call when connect_events() are ready (or errored) while connecting. True once connected
  // (and the TLS handshake is done); false while still under way.
  bool finish_connect();

  std::string& out() { return out_; }  // append commands here
  // The negotiated TLS protocol ("TLSv1.3"), "" without TLS or before the handshake.
  std::string tls_version() const;
  // Poll for POLLOUT: output waits for the socket, or a TLS read waits to write.
  bool want_write() const {
    return (out_pos_ < out_.size() && !write_wants_read_) || read_wants_write_;
  }
  // A TLS read stopped until the socket is writable: call read() on POLLOUT too.
  bool read_wants_write() const { return read_wants_write_; }
  void flush();  // sends what the socket takes now
  // Reads what is there into the reader (for TLS every decrypted byte OpenSSL holds, so
  // nothing waits unseen by poll); false: nothing (EAGAIN).
  bool read();
  Reply next_reply() { return reader_.next(); }

 private:
  struct Addr;
  struct SslDeleter {
    void operator()(ssl_st* s) const noexcept;
  };
  void start_after_lookup();
  void connect_next();
  bool finish_tcp_connect();
  void start_tls();
  bool handshake();
  bool tls_read(char* buf, std::size_t size);
  void tls_flush();
  void feed(const char* data, std::size_t n);

  Fd fd_;
  std::unique_ptr<Lookup> lookup_;
  bool resolving_ = false;
  bool connecting_ = false;
  const TlsContext* tls_ = nullptr;
  std::unique_ptr<ssl_st, SslDeleter> ssl_;
  bool handshaking_ = false;
  short handshake_events_ = 0;
  bool read_wants_write_ = false;
  bool write_wants_read_ = false;
  bool got_bytes_ = false;  // the server has sent something on this connection
  std::vector<Addr> addrs_;
  std::size_t next_addr_ = 0;
  std::string first_error_;
  std::string out_;
  std::size_t out_pos_ = 0;
  Reader reader_;
};

}  // namespace detail

}  // namespace pgbust::redis
