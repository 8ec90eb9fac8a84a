// The single-threaded event loop: one poll() over every socket, with finite timeouts.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace pgbust {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
inline constexpr TimePoint kNever = TimePoint::max();

// Anything the loop waits on: a socket, a timer, or both. The loop asks each Pollable, every
// round, what to wait for; so a component that must stop reading (back-pressure) just stops
// asking for POLLIN.
class Pollable {
 public:
  virtual ~Pollable() = default;
  virtual int fd() const = 0;                // -1 when there is no socket to watch now
  virtual short events() const = 0;          // POLLIN / POLLOUT wanted (0: none now)
  virtual void on_ready(short revents) = 0;  // the socket is ready (or errored)
  virtual TimePoint deadline() const = 0;    // next timer, kNever when none
  virtual void on_timer(TimePoint now) = 0;  // called once now >= deadline()
};

}  // namespace pgbust

namespace pgbust {

// Runs the poll() rounds. Pollables are borrowed; remove them before destroying them.
class Loop {
 public:
  void add(Pollable* p);
  void remove(Pollable* p);
  // One round: waits until a socket is ready, the earliest deadline passes, or `max_wait`
  // elapses (also on EINTR), then dispatches. Returns the number of pollables serviced.
  int run_once(std::chrono::milliseconds max_wait);

 private:
  std::vector<Pollable*> items_;
};

}  // namespace pgbust
