// The Redis target: a non-blocking, pipelined RESP connection (hiredis for the protocol, our
// own socket) and the applier that turns a batch of invalidations into idempotent commands.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pgbust/loop.hpp"

namespace pgbust::redis {

struct Options {
  // redis://[[user]:password@]host[:port][/db]  or  unix:///path/to/socket[?db=N]
  std::string url = "redis://127.0.0.1:6379/0";
  std::string password_file;  // first line is the password; overrides a password in the URL
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{5000};
  std::chrono::milliseconds backoff_min{100};
  std::chrono::milliseconds backoff_max{5000};
  std::size_t max_in_flight = 1024;  // commands sent and not yet answered
  std::size_t scan_count = 1000;     // SCAN ... COUNT
  std::size_t unlink_chunk = 512;    // keys per UNLINK
};

enum class State : std::uint8_t { Disconnected, Connecting, Handshake, Ready, BackingOff };
std::string_view to_string(State s);

// What one flush must do. Every command is idempotent, so a batch interrupted by a lost
// connection is simply applied again from the start.
struct Batch {
  std::vector<std::string> deletes;   // UNLINK, in chunks
  std::vector<std::string> patterns;  // SCAN MATCH pattern COUNT n, UNLINK what it finds
  std::vector<std::string> bumps;     // SET key <seed> NX; INCR key (seed: µs clock, so an
                                      // evicted counter never repeats an old value)
  std::vector<std::pair<std::string, std::string>> publishes;  // channel, message: sent last,
                                                               // after everything else succeeded
  bool empty() const {
    return deletes.empty() && patterns.empty() && bumps.empty() && publishes.empty();
  }
};

struct Stats {
  std::uint64_t commands = 0;      // commands answered
  std::uint64_t errors = 0;        // error replies and failed connections
  std::uint64_t keys_deleted = 0;  // sum of UNLINK replies
  std::uint64_t unlinks = 0;       // keys asked to be unlinked (existing or not)
  std::uint64_t patterns = 0;      // pattern deletes completed
  std::uint64_t bumps = 0;
  std::uint64_t publishes = 0;
  std::uint64_t reconnects = 0;
};

// Applies batches in order, one at a time, pipelined, retrying across reconnects until done.
// Plugs into the event loop as a Pollable.
class Target : public Pollable {
 public:
  explicit Target(Options options);
  ~Target() override;

  // Queue a batch; `done` runs (from the loop) once every command of it has succeeded.
  // Batches complete in the order they were queued.
  void apply(Batch batch, std::function<void()> done);
  std::size_t queued() const;  // batches not yet completed
  State state() const;
  bool connected() const { return state() == State::Ready; }
  const Stats& stats() const;
  std::string last_error() const;
  std::string describe() const;  // "127.0.0.1:6379 db 0" (never the password)

  // Pollable
  int fd() const override;
  short events() const override;
  void on_ready(short revents) override;
  TimePoint deadline() const override;
  void on_timer(TimePoint now) override;

  void close() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgbust::redis
