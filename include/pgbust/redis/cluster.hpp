// Redis Cluster: hash slots, the topology a node reports, and the applier that routes each
// command of a batch to the master serving its slot.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/redis/redis.hpp"

namespace pgbust::redis {

constexpr std::size_t kSlots = 16384;

// CRC16-CCITT (XMODEM) as the cluster spec defines it: crc16("123456789") == 0x31C3.
std::uint16_t crc16(std::string_view data);
// The key's hash slot: CRC16 of the key, or of the part between the first '{' and the next
// '}' when that part is not empty (a hash tag), mod 16384.
std::uint16_t key_slot(std::string_view key);

// MOVED, ASK, TRYAGAIN or CLUSTERDOWN: an error reply a cluster client handles itself.
bool is_redirection(std::string_view error);

// Who serves which slots, from CLUSTER SHARDS or CLUSTER SLOTS.
struct Topology {
  struct Node {
    std::string host;
    int port = 0;
    std::string addr() const;  // "host:port" ("[v6]:port")
  };
  std::vector<Node> masters;              // the nodes serving slots
  std::vector<Node> replicas;             // known for re-discovery when every master is gone
  std::array<std::int16_t, kSlots> slot;  // index into masters, -1: nobody serves it
  Topology() { slot.fill(-1); }
  std::size_t covered() const;  // slots with a master
};

namespace detail {
// The replies parsed (RESP2 arrays as hiredis gives them). `tls`: take a node's tls-port
// when CLUSTER SHARDS reports one. Throw pgbust::Error saying what was unexpected.
// `host`: the queried node, for a node reported without an address.
Topology parse_cluster_shards(const redisReply* reply, bool tls, const std::string& host);
Topology parse_cluster_slots(const redisReply* reply, const std::string& host);
// The seed nodes of a cluster URL (redis+cluster://[user:password@]host:port,host:port[/0],
// rediss+cluster://..., or a plain redis:// URL with options.cluster), each as resolve_endpoint
// gives it. Throws pgbust::Error (a db other than 0: a cluster has only db 0).
std::vector<Endpoint> cluster_seeds(const Options& options);
bool is_cluster_url(std::string_view url);
}  // namespace detail

// A Redis Cluster as one applier. It discovers the topology from a seed (CLUSTER SHARDS, or
// CLUSTER SLOTS on servers without it) and keeps one Target per master, registered with the
// loop given to attach(). Each batch is split per master by hash slot and applied in phases
// (deletes and pattern deletes on every master; then bumps; then publishes on one node;
// then XADDs, each on the master of its stream key), each phase once every part of the one
// before has been applied; done() runs once the last phase is applied. MOVED moves the slot
// in the map (and refreshes it) and sends the keys again to the named node; ASK sends them
// there after ASKING, one key per UNLINK; TRYAGAIN and CLUSTERDOWN retry them after a short
// backoff. A master that stops answering, or stops being a master, triggers re-discovery; its
// unfinished parts are applied again by the masters that now serve its slots (every command
// is idempotent). Patterns are SCANned on every master: each master's Target runs its own
// keyspace passes (UNLINKs of one slot at a time; a MOVED or ASK for a pass's UNLINK sends
// its keys on for the batches whose patterns match them). Batches run side by side on the
// nodes, so done() may run out of order (as Applier allows); the pipeline still confirms in
// commit order.
class ClusterTarget : public AnyTarget {
 public:
  explicit ClusterTarget(Options options);  // throws pgbust::Error for unusable options
  ~ClusterTarget() override;

  void apply(Batch batch, std::function<void()> done) override;
  bool idle() const override;
  State state() const override;
  const Stats& stats() const override;  // summed over the node connections
  std::string last_error() const override;
  std::string describe() const override;
  std::string name() const override;  // Options::name
  std::string role() const override;  // "cluster" once the slot map is known
  bool tls() const override;          // rediss+cluster:// (or rediss:// with cluster)
  // A ready master's negotiated protocol (every node uses the same TLS options).
  std::string tls_version() const override;
  std::size_t queued() const override;  // batches not yet completed
  void attach(Loop& loop) override;
  void detach(Loop& loop) override;
  void close() noexcept override;
  void on_pass(std::function<void(double seconds)> observe) override;  // each master's passes
  void reread_password() override;  // every node's Target (each also re-reads per connect)
  std::size_t masters() const;      // masters in the current map (0 before discovery)
  std::uint64_t refreshes() const;  // topology discoveries applied

  // Pollable: timers only (completions, retries, re-discovery); the nodes poll themselves.
  int fd() const override { return -1; }
  short events() const override { return 0; }
  void on_ready(short) override {}
  TimePoint deadline() const override;
  void on_timer(TimePoint now) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgbust::redis
