// The reconnecting-connection state machine every upstream connection shares.
#include "pgbust/core/session.hpp"

#include "pgbust/core/text.hpp"

namespace pgbust {

Session::Session(std::string name, RetryPolicy policy, Labels labels)
    : name_(std::move(name)),
      policy_(policy),
      labels_(labels),
      backoff_(policy_),
      limiter_(policy_.log_interval) {}

std::string_view Session::phase_name() const {
  switch (phase_) {
    case Phase::Idle:
    case Phase::Connecting:
      return labels_.connecting;
    case Phase::Starting:
      return standby_ ? "standby" : labels_.starting;
    case Phase::Up:
      return retrying_ ? labels_.up : "stopped";
    case Phase::BackingOff:
      return standby_ ? "standby" : "backing off";
    case Phase::Stopped:
      return "stopped";
  }
  return "?";
}

std::string Session::prefix() const {
  std::string out = name_ + " [" + std::string(phase_name()) + "]";
  if (!server_.empty()) out += " " + server_;
  return out;
}

bool Session::due(TimePoint now) const {
  return (phase_ == Phase::Idle || phase_ == Phase::BackingOff) && retrying_ && now >= retry_at_;
}

void Session::connecting(TimePoint now, std::chrono::milliseconds timeout) {
  if (attempted_ && !standby_) ++reconnects_;
  attempted_ = true;
  phase_ = Phase::Connecting;
  deadline_ = now + timeout;
}

void Session::starting(TimePoint deadline) {
  phase_ = Phase::Starting;
  deadline_ = deadline;
}

void Session::up(TimePoint now) {
  standby_ = false;
  holder_.clear();
  phase_ = Phase::Up;
  deadline_ = kNever;
  up_since_ = now;
}

void Session::recovered(TimePoint now) {
  if (failures_ > 0 && down_since_)
    log(spdlog::level::info, "working again after {} failed attempt(s) over {}", failures_,
        seconds_text(now - *down_since_));
  backoff_.reset();
  down_since_.reset();
  failures_ = 0;
}

bool Session::standby(std::string holder, TimePoint now) {
  holder_ = std::move(holder);
  if (standby_) return false;
  standby_ = true;
  standby_since_ = now;
  // Reaching the point where only the holder is in the way is progress: the connection and
  // the setup work, so a run of failures before it is over.
  if (failures_ > 0 || backoff_.failures() > 0) recovered(standby_since_);
  return true;
}

void Session::fail(std::string_view what, TimePoint now, std::string_view hint) {
  standby_ = false;
  holder_.clear();
  std::string error = one_line(what);
  ++errors_;
  last_error_ = error;
  if (phase_ == Phase::Up && now - up_since_ >= policy_.stable_after) recovered(now);
  if (!down_since_) down_since_ = now;
  ++failures_;
  std::uint64_t held = 0;
  bool logged = limiter_.allow(error, now, held);
  std::string tail = held ? fmt::format(" ({} identical failures not logged)", held) : "";
  deadline_ = kNever;
  if (!retrying_) {
    if (logged) log(spdlog::level::err, "{}{}; not retrying (stopping){}", error, hint, tail);
    phase_ = Phase::Stopped;
    return;
  }
  auto delay = backoff_.next();
  retry_at_ = now + delay;
  if (logged)
    log(spdlog::level::err, "{}{}; retrying in {} (attempt {}, down for {}){}", error, hint,
        seconds_text(delay), failures_ + 1, seconds_text(now - *down_since_), tail);
  phase_ = Phase::BackingOff;
}

void Session::reconnect_now() {
  phase_ = Phase::Idle;
  deadline_ = kNever;
  retry_at_ = TimePoint{};
}

TimePoint Session::deadline() const {
  switch (phase_) {
    case Phase::Idle:
    case Phase::BackingOff:
      return retrying_ ? retry_at_ : kNever;
    case Phase::Connecting:
    case Phase::Starting:
      return deadline_;
    case Phase::Up:
    case Phase::Stopped:
      return kNever;
  }
  return kNever;
}

bool Session::expired(TimePoint now) const {
  return (phase_ == Phase::Connecting || phase_ == Phase::Starting) && now >= deadline_;
}

void Session::count_error(std::string_view error) {
  ++errors_;
  last_error_ = one_line(error);
}

SourceState Session::state() const {
  switch (phase_) {
    case Phase::Idle:
    case Phase::Connecting:
      return standby_ ? SourceState::Standby : SourceState::Connecting;
    case Phase::Starting:
      return standby_ ? SourceState::Standby : SourceState::Starting;
    case Phase::Up:
      return retrying_ ? SourceState::Streaming : SourceState::Stopped;
    case Phase::BackingOff:
      return standby_ ? SourceState::Standby : SourceState::BackingOff;
    case Phase::Stopped:
      return SourceState::Stopped;
  }
  return SourceState::Stopped;
}

void Session::fill(SourceStatus& s) const {
  s.state = state();
  s.reconnects = reconnects_;
  s.errors = errors_;
  s.last_error = last_error_;
  s.standby = !standby_ || phase_ == Phase::Stopped ? "" : holder_.empty() ? "standby" : holder_;
}

}  // namespace pgbust
