// The event loop: one poll() over every Pollable's socket, woken by the earliest deadline.
#include "pgbust/core/loop.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>

namespace pgbust {

void Loop::add(Pollable* p) {
  if (std::find(items_.begin(), items_.end(), p) == items_.end()) items_.push_back(p);
}

void Loop::remove(Pollable* p) {
  std::erase(items_, p);
}

int Loop::run_once(std::chrono::milliseconds max_wait) {
  // Snapshot: a callback may add or remove pollables.
  std::vector<Pollable*> items = items_;
  std::vector<pollfd> fds;
  std::vector<Pollable*> owners;
  TimePoint now = Clock::now();
  TimePoint wake = now + max_wait;
  for (Pollable* p : items) {
    wake = std::min(wake, p->deadline());
    int fd = p->fd();
    short ev = fd >= 0 ? p->events() : 0;
    if (fd >= 0 && ev != 0) {
      fds.push_back({fd, ev, 0});
      owners.push_back(p);
    }
  }
  auto wait_ms = std::chrono::ceil<std::chrono::milliseconds>(wake - now).count();
  if (wait_ms < 0) wait_ms = 0;
  int n = ::poll(fds.data(), fds.size(), static_cast<int>(wait_ms));
  int serviced = 0;
  if (n > 0) {
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      // Skip a pollable removed by an earlier callback this round.
      if (std::find(items_.begin(), items_.end(), owners[i]) == items_.end()) continue;
      owners[i]->on_ready(fds[i].revents);
      ++serviced;
    }
  }
  // n < 0: EINTR (a signal) or a transient error: just go round again.
  now = Clock::now();
  for (Pollable* p : items) {
    if (std::find(items_.begin(), items_.end(), p) == items_.end()) continue;
    if (p->deadline() <= now) {
      p->on_timer(now);
      ++serviced;
    }
  }
  return serviced;
}

}  // namespace pgbust
