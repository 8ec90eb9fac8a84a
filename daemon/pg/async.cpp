// Non-blocking libpq connections for the NOTIFY and poll sources, and quoting without one.
#include "pgbust/pg/async.hpp"

#include "pgbust/pg/conninfo.hpp"

#include <poll.h>

#include <algorithm>

#include "pgbust/pg/connect_params.hpp"

namespace pgbust::pg {

namespace {

void notice_to_callback(void* arg, const char* message) {
  auto* fn = static_cast<std::function<void(std::string_view)>*>(arg);
  std::string_view text(message ? message : "");
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  if (fn && *fn) (*fn)(text);
}

}  // namespace

void AsyncConn::start(const std::string& conninfo, const std::string& application_name,
                      std::function<void(std::string_view)> on_notice) {
  close();
  on_notice_ = std::move(on_notice);
  conninfo_ = conninfo;
  application_name_ = application_name;
  connecting_ = true;
  busy_ = flushing_ = false;
  try {
    lookups_ = std::make_unique<HostLookups>(conninfo_);
  } catch (const ConnectionError& e) {
    close();
    throw ConnectionError("cannot start connecting to PostgreSQL (" + describe_conninfo(conninfo_) +
                          "): " + e.what());
  }
  if (lookups_->done()) start_libpq();
}

// Every host name is resolved (or there was none): libpq connects to the addresses.
void AsyncConn::start_libpq() {
  std::vector<std::pair<std::string, std::string>> addresses;
  try {
    addresses = lookups_->params();
  } catch (const ConnectionError& e) {
    close();
    throw ConnectionError("cannot connect to PostgreSQL (" + describe_conninfo(conninfo_) +
                          "): " + e.what());
  }
  lookups_.reset();
  // Keywords are applied in order and the expanded conninfo comes last, so an
  // application_name written in the conninfo wins over ours.
  ConnectParams params(conninfo_, {{"application_name", application_name_}}, addresses);
  conn_.reset(PQconnectStartParams(params.keys(), params.values(), 1));
  if (!conn_ || PQstatus(conn_.get()) == CONNECTION_BAD) {
    std::string text = connect_error(conn_.get(), conninfo_);
    close();
    throw ConnectionError("cannot start connecting to PostgreSQL (" + describe_conninfo(conninfo_) +
                          "): " + text);
  }
  PQsetNoticeProcessor(conn_.get(), notice_to_callback, &on_notice_);
  poll_ = PGRES_POLLING_WRITING;  // as if PQconnectPoll had asked to write
}

void AsyncConn::close() noexcept {
  pending_.reset();
  pending_error_.clear();
  lookups_.reset();
  conn_.reset();
  connecting_ = busy_ = flushing_ = false;
}

int AsyncConn::fd() const {
  if (lookups_) return lookups_->fd();
  return conn_ ? PQsocket(conn_.get()) : -1;
}

short AsyncConn::events(bool reading) const {
  if (lookups_) return POLLIN;
  if (!conn_) return 0;
  if (connecting_) return poll_ == PGRES_POLLING_READING ? POLLIN : POLLOUT;
  short ev = 0;
  if (reading || busy_) ev |= POLLIN;  // an answer in flight is always read
  if (flushing_) ev |= POLLOUT;
  return ev;
}

bool AsyncConn::continue_connect() {
  if (!connecting_) return true;
  if (lookups_) {
    if (lookups_->done()) start_libpq();
    return false;  // PQconnectPoll once the socket is writable
  }
  poll_ = PQconnectPoll(conn_.get());
  if (poll_ == PGRES_POLLING_FAILED) fail(conn_.get(), "connecting");
  if (poll_ != PGRES_POLLING_OK) return false;
  connecting_ = false;
  if (PQsetnonblocking(conn_.get(), 1) != 0) fail(conn_.get(), "switching to non-blocking mode");
  return true;
}

void AsyncConn::send(const std::string& sql,
                     const std::vector<std::optional<std::string>>& params) {
  if (!connected()) throw ConnectionError("sending a query: not connected");
  int ok;
  if (params.empty()) {
    ok = PQsendQuery(conn_.get(), sql.c_str());
  } else {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    ok = PQsendQueryParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                           values.data(), nullptr, nullptr, 0);
  }
  if (!ok) fail(conn_.get(), "sending a query");
  busy_ = true;
  int f = PQflush(conn_.get());
  if (f < 0) fail(conn_.get(), "sending a query");
  flushing_ = f == 1;
}

void AsyncConn::pump(short revents) {
  if (!connected()) return;
  if (revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
    if (!PQconsumeInput(conn_.get())) fail(conn_.get(), "reading from the server");
  }
  if (flushing_) {
    int f = PQflush(conn_.get());
    if (f < 0) fail(conn_.get(), "sending a query");
    flushing_ = f == 1;
  }
  if (PQstatus(conn_.get()) == CONNECTION_BAD) fail(conn_.get(), "reading from the server");
}

bool AsyncConn::take_result(Result& out, std::string_view what) {
  if (!busy_ || !connected()) return false;
  // PQisBusy false: PQgetResult will not block. Results of a multi-statement query arrive
  // one by one; the first error wins, otherwise the last result is the answer.
  while (!PQisBusy(conn_.get())) {
    Result r(PQgetResult(conn_.get()));
    if (!r) {
      busy_ = false;
      if (!pending_error_.empty()) {
        std::string error = std::move(pending_error_);
        pending_error_.clear();
        pending_.reset();
        throw Error(std::string(what) + " on " + server() + ": " + error);
      }
      out = std::move(pending_);
      return true;
    }
    auto st = PQresultStatus(r.get());
    if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
      if (pending_error_.empty()) pending_error_ = error_text(r.get());
      if (pending_error_.empty()) pending_error_ = error_text(conn_.get());
    } else {
      pending_ = std::move(r);
    }
  }
  if (PQstatus(conn_.get()) == CONNECTION_BAD) fail(conn_.get(), what);
  return false;
}

std::string AsyncConn::server() const {
  return describe(conn_.get());
}

std::string AsyncConn::host_port() const {
  return conn_ || !lookups_ ? pg::host_port(conn_.get()) : lookups_->server();
}

std::string quote_ident(std::string_view ident) {
  std::string out = "\"";
  for (char c : ident) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string quote_literal(std::string_view text) {
  bool backslash = text.find('\\') != std::string_view::npos;
  std::string out = backslash ? "E'" : "'";
  for (char c : text) {
    if (c == '\'' || (backslash && c == '\\')) out += c;
    out += c;
  }
  out += '\'';
  return out;
}

}  // namespace pgbust::pg
