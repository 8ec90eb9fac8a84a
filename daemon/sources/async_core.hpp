// A source on one non-blocking libpq connection: the connection phases (connect, the
// protocol's starting queries, streaming, backing off) around a Session, with the protocol's
// steps as hooks. The NOTIFY and poll sources implement only those.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>

#include "pgbust/core/session.hpp"
#include "pgbust/core/source.hpp"
#include "pgbust/pg/async.hpp"
#include "source_impl.hpp"

namespace pgbust::detail {

struct AsyncOptions {
  std::string name;              // "notify", "poll": log lines and status
  std::string conninfo;          // libpq conninfo or URI
  std::string application_name;  // unless the conninfo names one
  std::chrono::milliseconds connect_timeout{10'000};
  RetryPolicy retry;
  // Several hosts, one active: the identity of a session advisory lock (the server hashes it
  // with hashtextextended) taken on this connection before the protocol starts. While another
  // session holds it the source is standby and tries again every standby_interval; closing
  // the connection (or losing it) releases it. Empty: no lock.
  std::string lock;
  std::chrono::milliseconds standby_interval{1000};
};

// The wall clock in µs since the Unix epoch (commit times of sources without their own).
inline std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline double seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// The options every such source has, by the same names.
template <typename O>
AsyncOptions async_options(std::string name, std::string application_name, const O& o) {
  return {std::move(name),
          o.conninfo,
          std::move(application_name),
          o.connect_timeout,
          RetryPolicy{o.backoff_min, o.backoff_max, 0.5, std::chrono::seconds(30), o.log_interval},
          {},
          std::chrono::milliseconds(1000)};
}

class AsyncCore : public SourceImpl {
 public:
  AsyncCore(Source& self, ChangeSink& sink, AsyncOptions options);
  AsyncCore(const AsyncCore&) = delete;
  AsyncCore& operator=(const AsyncCore&) = delete;

  int fd() const override { return conn_.fd(); }
  short events() const override;
  void on_ready(short revents) override;
  TimePoint deadline() const override;
  void on_timer(TimePoint now) override;
  SourceStatus status() const override;
  void stop_reading() override;
  void close() noexcept override;
  const std::string& name() const override { return session_.name(); }

 protected:
  // ---- the protocol's steps -------------------------------------------------------------
  // Connected: send the first starting query (session_.starting() is already set).
  virtual void on_connected(TimePoint now) = 0;
  // Starting or up, after the connection read and wrote what it could.
  virtual void on_input(short revents, TimePoint now) = 0;
  // Starting or up: the protocol's timers (query deadlines, keepalives, rounds).
  virtual void on_tick(TimePoint now) = 0;
  virtual TimePoint next_tick() const = 0;
  // Starting or up: whether to read from the socket now.
  virtual bool want_input() const = 0;
  // The connection failed and is about to close: keep what was read, reset the protocol.
  virtual void on_lost() noexcept = 0;
  // Position and lag for the status.
  virtual void fill_status(SourceStatus& status) const = 0;

  void fail(const std::string& error, TimePoint now);
  bool stopped() const { return !session_.retrying(); }
  // "host:port dbname=... user=..." of the connected server, for messages.
  std::string server() const { return conn_.server(); }

  Source& self_;
  ChangeSink& sink_;
  AsyncOptions base_;
  pg::AsyncConn conn_;
  Session session_;

 private:
  void start_connect(TimePoint now);
  // The advisory lock (AsyncOptions::lock), before on_connected().
  void send_lock(TimePoint now);
  void lock_input(TimePoint now);
  void lock_tick(TimePoint now);

  bool locking_ = false;         // connected, the lock not taken yet
  bool lock_in_flight_ = false;  // pg_try_advisory_lock sent
  TimePoint lock_at_ = kNever;   // its answer's deadline, or the next try while standby
};

}  // namespace pgbust::detail
