// The TLS transport under Conn against an in-process OpenSSL server on a unix socket: a
// TLS 1.2 renegotiation arriving while a large write is stalled (the case where a read may
// need to write first: read_wants_write(), then POLLOUT) and every byte still arrives intact.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "harness.hpp"
#include "pgbust/redis/redis.hpp"

using pgbust::redis::Endpoint;
using pgbust::redis::TlsOptions;
using pgbust::redis::detail::Conn;
using pgbust::redis::detail::TlsContext;

TEST_CASE("TLS: a renegotiation during a stalled write; reads and writes resume, nothing lost") {
  pgbust::test::TlsCerts certs;
  pgbust::test::TempDir dir;
  std::string path = (dir.path() / "s.sock").string();
  int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 1) == 0);

  Endpoint ep;
  ep.unix_socket = true;
  ep.tls = true;
  ep.path = path;
  TlsOptions o;
  o.ca_file = certs.file("ca.crt");
  o.server_name = "localhost";
  TlsContext ctx(o, ep);
  Conn conn(ep, &ctx);
  int sfd = ::accept(listener, nullptr, nullptr);
  REQUIRE(sfd >= 0);
  ::fcntl(sfd, F_SETFL, O_NONBLOCK);
  int small = 4096;
  ::setsockopt(conn.fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  ::setsockopt(sfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);

  SSL_CTX* sctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_max_proto_version(sctx, TLS1_2_VERSION);  // renegotiation exists up to 1.2
  REQUIRE(SSL_CTX_use_certificate_chain_file(sctx, certs.file("server.crt").c_str()) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey_file(sctx, certs.file("server.key").c_str(), SSL_FILETYPE_PEM) ==
          1);
  SSL* s = SSL_new(sctx);
  SSL_set_fd(s, sfd);

  // Handshake, both sides non-blocking in this one thread.
  bool client_done = false, server_done = false;
  for (int i = 0; i < 10000 && !(client_done && server_done); ++i) {
    if (!client_done) client_done = conn.finish_connect();
    if (!server_done) server_done = SSL_accept(s) == 1;
  }
  REQUIRE(client_done);
  REQUIRE(server_done);

  // A large command the server does not read yet: the client's write stalls.
  std::string big(4 << 20, 'v');
  pgbust::redis::detail::append_command(conn.out(), {"SET", "k", big});
  conn.flush();
  REQUIRE(conn.want_write());
  // The server asks for a renegotiation; the client's read has to answer it while its
  // write is stalled (OpenSSL 3 may defer the answer, or ask to write first: WANT_WRITE).
  REQUIRE(SSL_renegotiate(s) == 1);
  SSL_do_handshake(s);
  for (int i = 0; i < 20; ++i) {
    conn.read();
    CHECK(conn.want_write());  // the caller keeps polling POLLOUT either way
  }

  // Now the server reads; the client does what its poll events say, as Target does.
  std::string got;
  char buf[65536];
  bool replied = false;
  pgbust::redis::detail::Reply reply;
  for (int i = 0; i < 200000 && !reply; ++i) {
    int n = SSL_read(s, buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    if (!replied && got.size() >= big.size() + 30) {
      SSL_write(s, "+OK\r\n", 5);
      replied = true;
    }
    pollfd p{conn.fd(), static_cast<short>(POLLIN | (conn.want_write() ? POLLOUT : 0)), 0};
    ::poll(&p, 1, 0);
    if ((p.revents & POLLIN) || ((p.revents & POLLOUT) && conn.read_wants_write())) conn.read();
    if (conn.want_write()) conn.flush();
    reply = conn.next_reply();
  }
  REQUIRE(reply);
  CHECK(reply->type == REDIS_REPLY_STATUS);
  std::string expected;
  pgbust::redis::detail::append_command(expected, {"SET", "k", big});
  CHECK(got == expected);
  SSL_free(s);
  SSL_CTX_free(sctx);
  ::close(sfd);
  ::close(listener);
}
