// The Redis wire layer: our own non-blocking socket (TCP or unix), our RESP command writer,
// hiredis's reply reader, each C handle owned by RAII.
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <new>

#include "pgbust/core/error.hpp"
#include "pgbust/core/resolver.hpp"
#include "pgbust/redis/redis.hpp"

namespace pgbust::redis::detail {

void Fd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void ReplyDeleter::operator()(redisReply* r) const noexcept {
  freeReplyObject(r);
}

// RESP argv form written straight into the buffer: hiredis's redisFormatCommandArgv does
// the same with a malloc, a copy and an sprintf per argument, which cost ~70 ns per key of
// an UNLINK chunk (bench_pipeline); this is ~10x less. Replies still go through hiredis.
void append_command(std::string& out, std::span<const std::string_view> argv) {
  std::size_t need = 16;
  for (std::string_view a : argv) need += a.size() + 16;
  out.reserve(out.size() + need);
  auto header = [&out](char type, std::size_t n) {
    char buf[24];
    buf[0] = type;
    char* end = std::to_chars(buf + 1, buf + sizeof buf - 2, n).ptr;
    *end++ = '\r';
    *end++ = '\n';
    out.append(buf, static_cast<std::size_t>(end - buf));
  };
  header('*', argv.size());
  for (std::string_view a : argv) {
    header('$', a.size());
    out.append(a);
    out.append("\r\n", 2);
  }
}

void append_command(std::string& out, std::initializer_list<std::string_view> argv) {
  append_command(out, std::span<const std::string_view>(argv.begin(), argv.size()));
}

void Reader::Deleter::operator()(redisReader* r) const noexcept {
  redisReaderFree(r);
}

Reader::Reader() : reader_(redisReaderCreate()) {
  if (!reader_) throw std::bad_alloc();
}

Reader::~Reader() = default;

void Reader::feed(std::string_view bytes) {
  if (redisReaderFeed(reader_.get(), bytes.data(), bytes.size()) != REDIS_OK)
    throw ConnectionError(std::string("reply reader failed: ") + reader_->errstr);
}

Reply Reader::next() {
  void* reply = nullptr;
  if (redisReaderGetReply(reader_.get(), &reply) != REDIS_OK)
    throw ConnectionError(std::string("protocol error in a reply: ") + reader_->errstr);
  return Reply(static_cast<redisReply*>(reply));
}

struct Conn::Addr : ResolvedAddress {};

Conn::Conn(const Endpoint& endpoint, const TlsContext* tls) : tls_(tls) {
  if (tls_ != nullptr) handshaking_ = true;  // starts once the TCP connect is done
  if (endpoint.unix_socket) {
    Addr a;
    auto* un = reinterpret_cast<sockaddr_un*>(&a.storage);
    if (endpoint.path.size() >= sizeof un->sun_path)
      throw ConnectionError("socket path longer than " + std::to_string(sizeof un->sun_path - 1) +
                            " bytes");
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, endpoint.path.data(), endpoint.path.size());
    a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + endpoint.path.size() + 1);
    a.family = AF_UNIX;
    a.text = endpoint.path;
    addrs_.push_back(std::move(a));
    connect_next();
    return;
  }
  // A numeric address is answered at once; a name is resolved off the loop: until then the
  // loop polls the lookup's fd and finish_connect() starts the connect.
  lookup_ = std::make_unique<Lookup>(endpoint.host, endpoint.port);
  resolving_ = true;
  if (lookup_->done()) start_after_lookup();
}

void Conn::start_after_lookup() {
  resolving_ = false;
  auto lookup = std::move(lookup_);
  for (auto& r : lookup->take()) {
    Addr a;
    static_cast<ResolvedAddress&>(a) = std::move(r);
    addrs_.push_back(std::move(a));
  }
  connect_next();
}

Conn::~Conn() = default;

int Conn::fd() const {
  return resolving_ ? lookup_->fd() : fd_.get();
}

void Conn::connect_next() {
  for (; next_addr_ < addrs_.size(); ++next_addr_) {
    const Addr& a = addrs_[next_addr_];
    Fd fd(::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
      int err = errno;
      throw ConnectionError(std::string("socket() failed: ") + std::strerror(err));
    }
    if (a.family != AF_UNIX) {
      int one = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a.storage), a.len);
    if (rc == 0 || errno == EINPROGRESS) {
      connecting_ = rc != 0;
      fd_ = std::move(fd);
      return;
    }
    int err = errno;
    if (!first_error_.empty()) first_error_ += "; ";
    first_error_ += (addrs_.size() > 1 ? a.text + ": " : "") + std::strerror(err);
  }
  fd_.reset();
  connecting_ = false;
  throw ConnectionError("connect failed: " + first_error_);
}

bool Conn::finish_connect() {
  if (resolving_) {
    if (!lookup_->done()) return false;
    start_after_lookup();
  }
  if (connecting_ && !finish_tcp_connect()) return false;
  if (!handshaking_) return true;
  if (!ssl_) start_tls();
  return handshake();
}

bool Conn::finish_tcp_connect() {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err == 0) {
    connecting_ = false;
    return true;
  }
  if (err == EINPROGRESS || err == EALREADY) return false;  // not finished yet
  if (!first_error_.empty()) first_error_ += "; ";
  first_error_ += (addrs_.size() > 1 ? addrs_[next_addr_].text + ": " : "") + std::strerror(err);
  ++next_addr_;
  connect_next();  // throws once every address failed
  return !connecting_;
}

void Conn::feed(const char* data, std::size_t n) {
  // A TLS record (0x16 handshake, 0x15 alert, then version 3.x) where RESP was expected.
  if (!got_bytes_ && !ssl_ && n >= 2 && (data[0] == 0x15 || data[0] == 0x16) && data[1] == 0x03)
    throw ConnectionError(
        "wrong protocol on the port: the server answered in TLS (use rediss:// and redis.tls)");
  got_bytes_ = true;
  reader_.feed(std::string_view(data, n));
}

void Conn::flush() {
  if (ssl_) return tls_flush();
  while (out_pos_ < out_.size()) {
    ssize_t n = ::send(fd_.get(), out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL);
    if (n >= 0) {
      out_pos_ += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    int err = errno;
    throw ConnectionError(std::string("write failed: ") + std::strerror(err));
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
    if (out_.capacity() > (4u << 20)) out_.shrink_to_fit();
  } else if (out_pos_ > (1u << 20)) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
}

bool Conn::read() {
  char buf[64 * 1024];
  if (ssl_) return tls_read(buf, sizeof buf);
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n > 0) {
      feed(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0)
      throw ConnectionError(got_bytes_ || tls_ != nullptr || addrs_[next_addr_].family == AF_UNIX
                                ? "connection closed by the server"
                                : "connection closed by the server before any reply (if the "
                                  "port expects TLS, use rediss://)");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    int err = errno;
    throw ConnectionError(std::string("read failed: ") + std::strerror(err) +
                          (got_bytes_ || err != ECONNRESET
                               ? ""
                               : " before any reply (if the port expects TLS, use rediss://)"));
  }
}

}  // namespace pgbust::redis::detail
