// Redis Sentinel: the applier that asks the sentinels where the master is, writes there
// through one Target, and follows the master when the sentinels fail it over.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgbust/redis/redis.hpp"

namespace pgbust::redis {

namespace detail {
// "host:port" or "[v6]:port" split; throws pgbust::Error naming `what` and the expected form.
std::pair<std::string, int> parse_host_port(std::string_view addr, std::string_view what);
// Each sentinel as an Endpoint: its address, the sentinels' user and password
// (SentinelOptions::password_file) and TLS. Throws pgbust::Error for an unusable setting.
std::vector<Endpoint> sentinel_endpoints(const Options& options);
// The data node's endpoint (Options::url, password_file, tls): the scheme, AUTH and db used
// on whichever master the sentinels name. Throws pgbust::Error (a unix socket or a cluster
// URL cannot be combined with Sentinel).
Endpoint sentinel_data_endpoint(const Options& options);
// Options for a Target on the master at host:port: `node`'s scheme, AUTH and db in the URL,
// and the data node's password_file (re-read by the Target before each connect).
Options master_options(const Options& options, const Endpoint& node, const std::string& host,
                       int port);
// A +switch-master or +promoted-slave message for `master`: the new master's host and port;
// nullopt for another master or a payload that is not one.
std::optional<std::pair<std::string, int>> parse_sentinel_event(std::string_view channel,
                                                                std::string_view payload,
                                                                std::string_view master);
}  // namespace detail

// A Sentinel-managed master as one applier.
//
// A link to one sentinel at a time (non-blocking, in the loop) sends AUTH (when configured),
// SENTINEL GET-MASTER-ADDR-BY-NAME <master> and SUBSCRIBE +switch-master +promoted-slave; a
// sentinel that fails or does not know the master is left for the next one, with backoff
// once every sentinel has failed in a row. A Target is connected to the address named; batches
// are handed to it only once its handshake's ROLE says master (else the sentinels are asked
// again). The master changes when a subscribed event names a new one, or when the sentinels
// are asked again — after the Target loses its connection, sees READONLY, or finds a
// replica — and name another. Then the old Target is closed (nothing it acknowledged after
// that counts: its done() callbacks are dropped) and the new master gets, in order: every
// batch applied on the old master in the last replay window (writes a demoted master
// acknowledged may be discarded when it resyncs from the new one, and a crashed master may not
// have replicated its last writes), then every unfinished batch, each in full (every command
// is idempotent: a delete twice is harmless, a bump twice is a revision skipped).
class SentinelTarget : public AnyTarget {
 public:
  explicit SentinelTarget(Options options);  // throws pgbust::Error for unusable options
  ~SentinelTarget() override;

  void apply(Batch batch, std::function<void()> done) override;
  bool idle() const override;
  State state() const override;         // the master's, Ready only once ROLE said master
  const Stats& stats() const override;  // summed over the masters so far, with failovers
  std::string last_error() const override;
  // "sentinel 'mymaster' master 127.0.0.1:6380 db 0" (never a password).
  std::string describe() const override;
  std::string name() const override;
  std::string role() const override;
  bool tls() const override;
  std::string tls_version() const override;
  std::size_t queued() const override;
  void attach(Loop& loop) override;
  void detach(Loop& loop) override;
  void close() noexcept override;
  void on_pass(std::function<void(double seconds)> observe) override;  // every master's passes
  void reread_password() override;     // the current master's (each master re-reads per connect)
  std::string master_address() const;  // "host:port" of the current master, "" before
  std::uint64_t failovers() const;     // master changes followed

  // Pollable: the link to the current sentinel and the timers (the master polls itself).
  int fd() const override;
  short events() const override;
  void on_ready(short revents) override;
  TimePoint deadline() const override;
  void on_timer(TimePoint now) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgbust::redis
