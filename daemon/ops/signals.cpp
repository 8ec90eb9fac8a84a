// signalfd-based signal delivery into the event loop.
#include "pgbust/ops/signals.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "pgbust/core/error.hpp"

namespace pgbust {

Signals::Signals(std::function<void(int)> on_signal) : on_signal_(std::move(on_signal)) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &mask, &old_mask_) != 0)
    throw Error(std::string("blocking signals: ") + std::strerror(errno));
  fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) {
    int err = errno;
    sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
    throw Error(std::string("signalfd: ") + std::strerror(err));
  }
  // A broken Redis or metrics connection must surface as an error, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
}

Signals::~Signals() {
  if (fd_ >= 0) ::close(fd_);
  sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
}

short Signals::events() const {
  return POLLIN;
}

void Signals::on_ready(short) {
  signalfd_siginfo info;
  while (::read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info))
    on_signal_(static_cast<int>(info.ssi_signo));
}

}  // namespace pgbust
