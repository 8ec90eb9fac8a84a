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
  session_.set_server(pg::host_port(conn_.get()));
}

void AsyncCore::fail(const std::string& error, TimePoint now) {
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
      return conn_.events(want_input());
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
        on_connected(now);
        return;
      case Phase::Starting:
      case Phase::Up:
        conn_.pump(revents);
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
      return next_tick();
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
