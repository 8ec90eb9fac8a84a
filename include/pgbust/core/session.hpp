// One reconnecting connection's state machine, protocol-independent: phase, deadlines,
// backoff, rate-limited failure lines, counters and the log prefix. The logical, notify and
// poll sources and the Redis target each own one and implement only their protocol steps.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pgbust/core/log_fields.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/core/retry.hpp"
#include "pgbust/core/source.hpp"

namespace pgbust {

// Idle: not connected, connect when due. Connecting: the transport (TCP, TLS, auth) is being
// set up. Starting: connected, the protocol's setup (LISTEN, IDENTIFY_SYSTEM, AUTH, ...) is
// running. Up: doing its work. BackingOff: failed, retry at retry_at(). Stopped: for good.
enum class Phase : std::uint8_t { Idle, Connecting, Starting, Up, BackingOff, Stopped };

class Session {
 public:
  // What each phase is called in log lines and where a protocol has its own word for it.
  struct Labels {
    const char* connecting = "connecting";
    const char* starting = "starting";
    const char* up = "streaming";
    bool target = false;  // a Redis target, not a source (the log field it sets)
  };

  Session(std::string name, RetryPolicy policy, Labels labels);
  Session(std::string name, RetryPolicy policy) : Session(std::move(name), policy, Labels{}) {}

  const std::string& name() const { return name_; }
  Phase phase() const { return phase_; }
  std::string_view phase_name() const;
  // The server as log lines name it ("host:port"); empty until the protocol knows it.
  void set_server(std::string server) { server_ = std::move(server); }
  const std::string& server() const { return server_; }
  // "<name> [<phase>] <server>", the start of every line about this connection.
  std::string prefix() const;

  // ---- transitions ----------------------------------------------------------------------
  // Idle or backing off, and the retry time has come.
  bool due(TimePoint now) const;
  // Connecting now, failing if not connected within `timeout`. An attempt after the first
  // counts as a reconnect.
  void connecting(TimePoint now, std::chrono::milliseconds timeout);
  // Connected: the protocol's setup runs, each step due within a deadline (expect()).
  void starting(TimePoint deadline);
  void expect(TimePoint deadline) { deadline_ = deadline; }
  // The protocol's setup succeeded. Not yet a recovery: an error right after it (the first
  // change of a stream) keeps the backoff growing. progress() ends a run of failures, or
  // staying up for stable_after.
  void up(TimePoint now);
  // The connection did useful work (a commit delivered, a round read, a batch applied): a
  // run of failures is over (logged once), and the next failure backs off from the minimum.
  void progress(TimePoint now) {
    if (failures_ > 0 || backoff_.failures() > 0) recovered(now);
  }
  // Within a run of failures (per-connection lines are then better at debug level).
  bool recovering() const { return failures_ > 0; }
  // A failure: counts it, logs it at most once per log_interval when it repeats, and backs
  // off (or stops, after stop_retrying()). `hint` is added to the logged line only.
  void fail(std::string_view error, TimePoint now, std::string_view hint = {});
  // A connection closed while idle (server timeout, restart): reconnect now, no failure.
  void reconnect_now();
  // Stop reconnecting: a later failure stops instead of backing off.
  void stop_retrying() { retrying_ = false; }
  bool retrying() const { return retrying_; }
  void stop() { phase_ = Phase::Stopped; }
  // Another instance holds what this connection's protocol needs (a replication slot, an
  // advisory lock): the connection works, and the protocol retries at its own steady pace
  // until it is free. The state is Standby (not Starting or BackingOff) until up() or a
  // failure; connects made meanwhile are not counted as reconnects. `holder` says who holds
  // it (status). Returns true when this call entered standby (log that once).
  bool standby(std::string holder, TimePoint now);
  bool is_standby() const { return standby_; }
  const std::string& holder() const { return holder_; }

  // ---- timing ---------------------------------------------------------------------------
  // Idle/backing off: when to connect; Connecting/Starting: the current step's deadline;
  // Up: kNever (the protocol has its own timers); Stopped: kNever.
  TimePoint deadline() const;
  // Connecting or Starting and the deadline has passed.
  bool expired(TimePoint now) const;
  TimePoint retry_at() const { return retry_at_; }

  // ---- counters -------------------------------------------------------------------------
  // An error that does not end the connection (a malformed payload): counted and shown.
  void count_error(std::string_view error);
  std::uint64_t reconnects() const { return reconnects_; }
  std::uint64_t errors() const { return errors_; }
  const std::string& last_error() const { return last_error_; }
  // How long this has been standby (zero when it is not).
  Clock::duration standby_for(TimePoint now) const {
    return standby_ ? now - standby_since_ : Clock::duration::zero();
  }
  // Since when the connection has been failing; empty once it made progress again.
  const std::optional<TimePoint>& down_since() const { return down_since_; }
  int failures() const { return failures_; }  // consecutive, since the last progress
  int backoff_failures() const { return backoff_.failures(); }
  SourceState state() const;
  // Copies state and counters into a source's status.
  void fill(SourceStatus& status) const;

  template <typename... A>
  void log(spdlog::level::level_enum level, fmt::format_string<A...> f, A&&... args) const {
    if (!spdlog::should_log(level)) return;
    LogScope scope(labels_.target ? LogFields::of_target(name_) : LogFields::of_source(name_));
    spdlog::log(level, "{}: {}", prefix(), fmt::format(f, std::forward<A>(args)...));
  }

 private:
  void recovered(TimePoint now);

  std::string name_;
  RetryPolicy policy_;
  Labels labels_;
  std::string server_;
  Phase phase_ = Phase::Idle;
  bool retrying_ = true;
  bool attempted_ = false;  // a connection was attempted before
  bool standby_ = false;    // see standby()
  std::string holder_;
  TimePoint standby_since_{};
  TimePoint deadline_ = kNever, retry_at_{}, up_since_{};
  Backoff backoff_;
  LogLimiter limiter_;  // kept across reconnects: a storm is logged once per interval
  std::uint64_t reconnects_ = 0, errors_ = 0;
  std::string last_error_;
  std::optional<TimePoint> down_since_;
  int failures_ = 0;
};

}  // namespace pgbust
