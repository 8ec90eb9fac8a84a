// Atomic, symlink-safe state files (see state_file.hpp).
#include "pgbust/core/state_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "pgbust/core/error.hpp"

namespace pgbust {

namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& p, int err) {
  throw Error(what + " " + p.string() + ": " + std::strerror(err));
}

void write_all(int fd, const std::string& text, const std::filesystem::path& p) {
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot write", p, errno);
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

void write_state_file(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::path dir = file.parent_path();
  if (dir.empty()) dir = ".";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    std::error_code ec;  // a missing parent: create the chain (the last level 0700 above)
    std::filesystem::create_directories(dir.parent_path(), ec);
    if (ec || (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST))
      fail("cannot create the state directory", dir, ec ? ec.value() : errno);
  }
  std::filesystem::path tmp = file;
  tmp += ".tmp";
  ::unlink(tmp.c_str());  // left by a crash; never followed or reused
  try {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.fd < 0) fail("cannot create", tmp, errno);
    write_all(fd.fd, text, tmp);
    if (::fsync(fd.fd) != 0) fail("cannot fsync", tmp, errno);
    if (::close(fd.release()) != 0) fail("cannot close", tmp, errno);
    if (::rename(tmp.c_str(), file.c_str()) != 0)
      fail("cannot rename " + tmp.string() + " to", file, errno);
  } catch (...) {
    ::unlink(tmp.c_str());  // never leave a partial (or empty) file behind
    throw;
  }
  // The rename itself must survive a crash: sync the directory entry.
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.fd < 0 || ::fsync(d.fd) != 0) fail("cannot fsync the directory", dir, errno);
}

std::optional<std::string> read_state_file(const std::filesystem::path& file) {
  Fd fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    fail("cannot read", file, errno);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read", file, errno);
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace pgbust
