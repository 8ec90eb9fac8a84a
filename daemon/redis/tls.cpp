// TLS under the Redis wire: one SSL_CTX per target (trust store, client certificate,
// verification mode), a fresh SSL session per connection, and the non-blocking handshake,
// reads and writes mapped onto the event loop's poll events (WANT_READ/WANT_WRITE in both
// directions). Failures are worded for an operator: expired, untrusted, wrong host name,
// wrong protocol on the port.
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/redis.hpp"

namespace pgbust::redis::detail {

namespace {

// The reason text of OpenSSL's last queued error ("" when none).
std::string last_ssl_error() {
  unsigned long e = ERR_peek_last_error();
  if (e == 0) return "";
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : "error " + std::to_string(ERR_GET_REASON(e));
}

[[noreturn]] void config_error(const std::string& what) {
  std::string detail = last_ssl_error();
  ERR_clear_error();
  throw Error("redis.tls: " + what + (detail.empty() ? "" : ": " + detail));
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

TlsContext::TlsContext(const TlsOptions& o, const Endpoint& endpoint)
    : server_name_(o.server_name.empty() ? endpoint.host : o.server_name), verify_(o.verify) {
  if (verify_ != "full" && verify_ != "ca" && verify_ != "none")
    throw Error("redis.tls.verify is '" + verify_ + "'; expected one of: full, ca, none");
  if (o.cert_file.empty() != o.key_file.empty())
    throw Error(
        "redis.tls: cert_file and key_file go together (a client certificate needs its key)");
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) config_error("cannot create a TLS context");
  SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // A fresh session per connection: a reconnect after a restart never resumes a stale one.
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx_, SSL_OP_NO_TICKET);
  if (!o.min_version.empty()) {
    int v = o.min_version == "1.2" ? TLS1_2_VERSION : o.min_version == "1.3" ? TLS1_3_VERSION : 0;
    if (v == 0)
      throw Error("redis.tls.min_version is '" + o.min_version + "'; expected 1.2 or 1.3");
    SSL_CTX_set_min_proto_version(ctx_, v);
  }
  if (verify_ != "none") {
    if (o.ca_file.empty() && o.ca_path.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx_) != 1)
        config_error("cannot load the system CA store");
    } else if (SSL_CTX_load_verify_locations(ctx_, o.ca_file.empty() ? nullptr : o.ca_file.c_str(),
                                             o.ca_path.empty() ? nullptr : o.ca_path.c_str()) !=
               1) {
      config_error("cannot load CA certificates from " + (o.ca_file.empty()
                                                              ? "ca_path '" + o.ca_path + "'"
                                                              : "ca_file '" + o.ca_file + "'"));
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  }
  if (!o.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx_, o.cert_file.c_str()) != 1)
      config_error("cannot load cert_file '" + o.cert_file + "'");
    if (SSL_CTX_use_PrivateKey_file(ctx_, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      if (ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
        config_error("cannot load key_file '" + o.key_file + "'");
      ERR_clear_error();
      throw Error("redis.tls: key_file '" + o.key_file + "' does not match cert_file '" +
                  o.cert_file + "'");
    }
    if (SSL_CTX_check_private_key(ctx_) != 1)
      config_error("key_file '" + o.key_file + "' does not match cert_file '" + o.cert_file + "'");
  }
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

void Conn::SslDeleter::operator()(ssl_st* s) const noexcept {
  SSL_free(s);
}

short Conn::connect_events() const {
  if (resolving_) return POLLIN;
  if (connecting_ || !ssl_) return POLLOUT;
  return handshake_events_;
}

void Conn::start_tls() {
  ERR_clear_error();
  ssl_.reset(SSL_new(tls_->get()));
  if (!ssl_ || SSL_set_fd(ssl_.get(), fd_.get()) != 1)
    throw ConnectionError("TLS setup failed: " + last_ssl_error());
  const std::string& name = tls_->server_name();
  const bool ip = is_ip_address(name);
  // SNI carries host names only (RFC 6066); an address is checked against the IP SANs.
  if (!ip && !name.empty()) SSL_set_tlsext_host_name(ssl_.get(), name.c_str());
  if (tls_->verify() == "full") {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) throw ConnectionError("TLS setup failed: cannot check the name '" + name + "'");
  }
  handshaking_ = true;
  handshake_events_ = POLLOUT;
}

namespace {

// Why a TLS operation failed, in one line. `op`: "TLS handshake failed", "TLS read failed".
std::string tls_failure(ssl_st* ssl, const std::string& op, int rc, int err,
                        const TlsContext& tls) {
  const long verify = SSL_get_verify_result(ssl);
  const unsigned long e = ERR_peek_last_error();
  const int reason = ERR_GET_REASON(e);
  std::string text;
  if (verify != X509_V_OK && tls.verify() != "none") {
    switch (verify) {
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        text = "host name mismatch: the server's certificate is not for '" + tls.server_name() +
               "' (set redis.tls.server_name to a name it holds, or verify: ca)";
        break;
      case X509_V_ERR_CERT_HAS_EXPIRED:
        text = "the server's certificate has expired";
        break;
      case X509_V_ERR_CERT_NOT_YET_VALID:
        text = "the server's certificate is not valid yet (check the clocks)";
        break;
      default:
        text = std::string("untrusted server certificate: ") +
               X509_verify_cert_error_string(verify) +
               " (give the CA that signed it in redis.tls.ca_file)";
    }
  } else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
             reason == SSL_R_UNKNOWN_PROTOCOL || reason == SSL_R_HTTP_REQUEST) {
    text = "wrong protocol on the port: the server does not speak TLS (" + last_ssl_error() +
           "; a plain-text Redis? then use redis://)";
  } else if (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
             reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE ||
             reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
             reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA) {
    text = "the server refused the client certificate (" + last_ssl_error() +
           "; set redis.tls.cert_file and key_file to one its CA signed)";
  } else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    text = "connection closed by the server (without a TLS close_notify)";
  } else if (e != 0) {
    text = last_ssl_error();
  } else if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && rc == 0)) {
    text = "connection closed by the server";
  } else if (err == SSL_ERROR_SYSCALL) {
    text = errno != 0 ? std::strerror(errno) : "connection closed by the server";
  } else {
    text = "OpenSSL error " + std::to_string(err);
  }
  ERR_clear_error();
  return op + ": " + text;
}

}  // namespace

std::string Conn::tls_version() const {
  return ssl_ && !handshaking_ ? SSL_get_version(ssl_.get()) : "";
}

bool Conn::handshake() {
  ERR_clear_error();
  errno = 0;
  int rc = SSL_connect(ssl_.get());
  if (rc == 1) {
    handshaking_ = false;
    return true;
  }
  int err = SSL_get_error(ssl_.get(), rc);
  if (err == SSL_ERROR_WANT_READ) {
    handshake_events_ = POLLIN;
    return false;
  }
  if (err == SSL_ERROR_WANT_WRITE) {
    handshake_events_ = POLLOUT;
    return false;
  }
  throw ConnectionError(tls_failure(ssl_.get(), "TLS handshake failed", rc, err, *tls_));
}

// Reads until OpenSSL wants the socket again, so no decrypted byte waits inside it where
// poll cannot see it (SSL_has_pending drained); a read that needs to write first sets
// read_wants_write_ (the caller polls POLLOUT and calls read() again).
bool Conn::tls_read(char* buf, std::size_t size) {
  read_wants_write_ = false;
  write_wants_read_ = false;  // a write waiting for input may go on after this read
  bool any = false;
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int n = SSL_read(ssl_.get(), buf, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
    if (n > 0) {
      feed(buf, static_cast<std::size_t>(n));
      any = true;
      continue;
    }
    int err = SSL_get_error(ssl_.get(), n);
    if (err == SSL_ERROR_WANT_READ) return any;
    if (err == SSL_ERROR_WANT_WRITE) {
      read_wants_write_ = true;
      return any;
    }
    if (any) return true;  // the replies first; the failure shows on the next read
    if (err == SSL_ERROR_ZERO_RETURN)
      throw ConnectionError("connection closed by the server (TLS close_notify)");
    throw ConnectionError(tls_failure(ssl_.get(), "TLS read failed", n, err, *tls_));
  }
}

void Conn::tls_flush() {
  write_wants_read_ = false;
  while (out_pos_ < out_.size()) {
    // The length never shrinks between retries (out_ only grows at its end), as SSL_write
    // requires after WANT_*; the buffer may move (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
    std::size_t len = std::min<std::size_t>(out_.size() - out_pos_, 1u << 30);
    ERR_clear_error();
    errno = 0;
    int n = SSL_write(ssl_.get(), out_.data() + out_pos_, static_cast<int>(len));
    if (n > 0) {
      out_pos_ += static_cast<std::size_t>(n);
      continue;
    }
    int err = SSL_get_error(ssl_.get(), n);
    if (err == SSL_ERROR_WANT_WRITE) return;
    if (err == SSL_ERROR_WANT_READ) {  // POLLIN is always polled; a read retries the write
      write_wants_read_ = true;
      return;
    }
    if (err == SSL_ERROR_SYSCALL && !got_bytes_) {
      // Reset right after the handshake: a server refusing our certificate (TLS 1.3 checks
      // it after the client finished) may have sent the alert that says why; read it.
      const int saved = errno;
      char alert[256];
      ERR_clear_error();
      int r = SSL_read(ssl_.get(), alert, sizeof alert);
      if (r <= 0 && SSL_get_error(ssl_.get(), r) == SSL_ERROR_SSL)
        throw ConnectionError(tls_failure(ssl_.get(), "TLS write failed", r, SSL_ERROR_SSL, *tls_));
      ERR_clear_error();
      throw ConnectionError(std::string("TLS write failed: ") +
                            (saved != 0 ? std::strerror(saved) : "connection closed") +
                            " before any reply (does the server require a client certificate? "
                            "then set redis.tls.cert_file and key_file)");
    }
    throw ConnectionError(tls_failure(ssl_.get(), "TLS write failed", n, err, *tls_));
  }
}

}  // namespace pgbust::redis::detail
