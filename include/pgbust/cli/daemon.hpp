// `pgbust run`: wires config, rules, sources, the pipeline and the Redis target into one
// event loop, and handles signals (SIGTERM drain, SIGHUP reload), status and systemd.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pgbust/core/config.hpp"
#include "pgbust/redis/redis.hpp"

namespace pgbust::cli {

class Daemon {
 public:
  // Loads the rules (throws Error with every problem when they are bad: the first load is
  // fatal) and builds the components. Connections start in run().
  explicit Daemon(config::Config config);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs until SIGTERM/SIGINT (drains, returns 0) or a fatal error (returns non-zero).
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgbust::cli
