// Resolving a conninfo's host names off the event loop for libpq (see host_lookups.hpp).
#include "pgbust/pg/host_lookups.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <set>

#include "pgbust/core/error.hpp"
#include "pgbust/core/resolver.hpp"

namespace pgbust::pg {

namespace {

struct OptionsDeleter {
  void operator()(PQconninfoOption* o) const noexcept { PQconninfoFree(o); }
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::size_t b = 0;
  for (;;) {
    auto e = s.find(',', b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) return out;
    b = e + 1;
  }
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

HostLookups::HostLookups(const std::string& conninfo) {
  std::string host, hostaddr, port, service;
  char* err = nullptr;
  std::unique_ptr<PQconninfoOption, OptionsDeleter> parsed(PQconninfoParse(conninfo.c_str(), &err));
  if (err) PQfreemem(err);  // a bare database name, or text libpq will report when connecting
  if (parsed) {
    for (auto* o = parsed.get(); o->keyword; ++o) {
      if (!o->val || !*o->val) continue;
      std::string_view k(o->keyword);
      if (k == "host") host = o->val;
      if (k == "hostaddr") hostaddr = o->val;
      if (k == "port") port = o->val;
      if (k == "service") service = o->val;
    }
  }
  if (host.empty()) {
    host = env("PGHOST");
    if (service.empty()) service = env("PGSERVICE");
    if (!service.empty()) return;  // the service file may name the host: left to libpq
  }
  if (hostaddr.empty()) hostaddr = env("PGHOSTADDR");
  if (host.empty() || !hostaddr.empty()) return;
  if (port.empty()) port = env("PGPORT");
  std::vector<std::string> hosts = split_commas(host);
  std::vector<std::string> ports = split_commas(port);
  if (ports.size() != 1 && ports.size() != hosts.size()) return;  // libpq says what is wrong
  per_host_ports_ = ports.size() > 1;
  bool any_name = false;
  for (const auto& h : hosts)
    any_name = any_name || !(h.empty() || h[0] == '/' || h[0] == '@' || is_numeric_host(h));
  if (!any_name) return;  // libpq never blocks on these
  server_ = host + (port.empty() ? "" : ":" + port);
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    Entry e;
    e.host = hosts[i];
    e.port = per_host_ports_ ? ports[i] : "";
    const std::string& h = e.host;
    if (!(h.empty() || h[0] == '/' || h[0] == '@' || is_numeric_host(h)))
      e.lookup = std::make_unique<Lookup>(h, 0);
    entries_.push_back(std::move(e));
  }
}

HostLookups::~HostLookups() = default;

bool HostLookups::done() const {
  for (const auto& e : entries_)
    if (e.lookup && !e.lookup->done()) return false;
  return true;
}

std::string HostLookups::server() const {
  return server_;
}

int HostLookups::fd() const {
  int any = -1;
  for (const auto& e : entries_) {
    if (e.lookup && !e.lookup->done()) return e.lookup->fd();
    if (e.lookup) any = e.lookup->fd();
  }
  return any;  // all answered: readable, so the caller's poll wakes it to go on
}

std::vector<std::pair<std::string, std::string>> HostLookups::params() {
  if (entries_.empty()) return {};
  std::vector<std::string> hosts, addrs, ports;
  std::string errors;
  for (const auto& e : entries_) {
    if (!e.lookup) {
      hosts.push_back(e.host);
      addrs.emplace_back();
      ports.push_back(e.port);
      continue;
    }
    try {
      std::set<std::string> seen;
      for (const auto& a : e.lookup->take()) {
        if (!seen.insert(a.text).second) continue;
        hosts.push_back(e.host);
        addrs.push_back(a.text);
        ports.push_back(e.port);
      }
    } catch (const ConnectionError& x) {
      errors += (errors.empty() ? "" : "; ") + std::string(x.what());
    }
  }
  if (hosts.empty()) throw ConnectionError(errors);
  std::vector<std::pair<std::string, std::string>> out{{"host", join(hosts)},
                                                       {"hostaddr", join(addrs)}};
  if (per_host_ports_) out.emplace_back("port", join(ports));
  return out;
}

}  // namespace pgbust::pg
