// Connection phases of the sources on a non-blocking libpq connection, written once for the
// NOTIFY and poll sources.
#include "async_core.hpp"

#include <fmt/format.h>
#include <poll.h>

namespace pgbust::detail {

AsyncCore::AsyncCore(Source& self, ChangeSink& sink, AsyncOptions options)
    : self_(self), sink_(sink), base_(std::move(options)), session_(base_.name, base_.retry) {}

void AsyncCore::start_connect(TimePoint now) {
  session_.connecting(now, base_.connect_timeout);
  std::string name = base_.name;
  conn_.start(base_.conninfo, base_.application_name, [name](std::string_view notice) {
    spdlog::info("{}: server notice: {}", name, notice);
  });
  session_.set_server(conn_.host_port());
}

namespace {

// Takes the lock, and says who holds it when it is taken: the other sessions granted the
// same advisory lock (the key split into classid and objid as pg_locks shows a bigint key),
// with the client address pg_stat_activity shows (NULL for a local socket or without the
// privilege to see it).
constexpr const char* kTryLock =
    "WITH k AS (SELECT pg_catalog.hashtextextended($1, 0) AS key) "
    "SELECT pg_catalog.pg_try_advisory_lock(k.key), "
    "(SELECT pg_catalog.string_agg('PID ' || l.pid || coalesce(' (client ' || "
    "pg_catalog.host(a.client_addr) || ')', ''), ', ') "
    "FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.pid <> pg_catalog.pg_backend_pid() "
    "AND l.classid = ((k.key >> 32) & 4294967295)::oid AND l.objid = (k.key & 4294967295)::oid) "
    "FROM k";

}  // namespace

void AsyncCore::send_lock(TimePoint now) {
  conn_.send(kTryLock, {base_.lock});
  lock_in_flight_ = true;
  lock_at_ = now + base_.connect_timeout;
}

void AsyncCore::lock_input(TimePoint now) {
  pg::Result res;
  if (!lock_in_flight_ ||
      !conn_.take_result(res, "taking the advisory lock \"" + base_.lock + "\""))
    return;
  lock_in_flight_ = false;
  const bool taken = PQntuples(res.get()) == 1 && PQgetvalue(res.get(), 0, 0)[0] == 't';
  if (taken) {
    locking_ = false;
    lock_at_ = kNever;
    if (session_.is_standby())
      session_.log(spdlog::level::warn,
                   "taking over after {} standby: the active instance released the advisory "
                   "lock \"{}\"",
                   seconds_text(session_.standby_for(now)), base_.lock);
    on_connected(now);
    return;
  }
  std::string holder = "the advisory lock \"" + base_.lock + "\" is held by ";
  holder += PQgetisnull(res.get(), 0, 1) ? std::string("another session")
                                         : std::string(PQgetvalue(res.get(), 0, 1));
  if (session_.standby(holder, now))
    session_.log(spdlog::level::info,
                 "another instance is active ({}): standby, trying again every {} and taking "
                 "over when it is released",
                 holder, seconds_text(base_.standby_interval));
  lock_at_ = now + base_.standby_interval;
}

void AsyncCore::lock_tick(TimePoint now) {
  if (now < lock_at_) return;
  if (lock_in_flight_)
    throw ConnectionError(fmt::format("no answer within {} while taking the advisory lock \"{}\"",
                                      seconds_text(base_.connect_timeout), base_.lock));
  send_lock(now);
}

void AsyncCore::fail(const std::string& error, TimePoint now) {
  locking_ = lock_in_flight_ = false;
  lock_at_ = kNever;
  on_lost();
  conn_.close();
  session_.fail(pg::one_line(error), now);
}

short AsyncCore::events() const {
  switch (session_.phase()) {
    case Phase::Connecting:
      return conn_.events(false);
    case Phase::Starting:
    case Phase::Up:
      return conn_.events(locking_ || want_input());
    default:
      return 0;
  }
}

void AsyncCore::on_ready(short revents) {
  TimePoint now = Clock::now();
  try {
    switch (session_.phase()) {
      case Phase::Connecting:
        if (!conn_.continue_connect()) return;
        session_.set_server(pg::host_port(conn_.get()));
        session_.starting(kNever);
        if (!base_.lock.empty()) {
          locking_ = true;
          send_lock(now);
          return;
        }
        on_connected(now);
        return;
      case Phase::Starting:
      case Phase::Up:
        conn_.pump(revents);
        if (locking_)
          lock_input(now);
        else
          on_input(revents, now);
        return;
      default:
        return;
    }
  } catch (const std::exception& e) {
    fail(e.what(), now);
  }
}

void AsyncCore::on_timer(TimePoint now) {
  try {
    switch (session_.phase()) {
      case Phase::Idle:
      case Phase::BackingOff:
        if (session_.due(now)) start_connect(now);
        return;
      case Phase::Connecting:
        if (session_.expired(now))
          throw ConnectionError(
              fmt::format("no connection within {}", seconds_text(base_.connect_timeout)));
        return;
      case Phase::Starting:
      case Phase::Up:
        if (locking_)
          lock_tick(now);
        else
          on_tick(now);
        return;
      case Phase::Stopped:
        return;
    }
  } catch (const std::exception& e) {
    fail(e.what(), now);
  }
}

TimePoint AsyncCore::deadline() const {
  switch (session_.phase()) {
    case Phase::Starting:
    case Phase::Up:
      return locking_ ? lock_at_ : next_tick();
    default:
      return session_.deadline();
  }
}

SourceStatus AsyncCore::status() const {
  SourceStatus s;
  fill_status(s);
  session_.fill(s);
  return s;
}

void AsyncCore::stop_reading() {
  session_.stop_retrying();
  if (session_.phase() != Phase::Up) {
    locking_ = lock_in_flight_ = false;
    conn_.close();
    session_.stop();
  }
}

void AsyncCore::close() noexcept {
  conn_.close();
  session_.stop_retrying();
  session_.stop();
}

}  // namespace pgbust::detail
