// What every change source (logical replication, LISTEN/NOTIFY, watermark polling) provides
// to the daemon, and the pipeline interface sources feed committed changes into.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgbust/core/change.hpp"
#include "pgbust/core/loop.hpp"

namespace pgbust {

namespace rules {
class RuleSet;
}

// A source's resume point: an LSN for the logical source, a sequence number for the others.
using Position = std::uint64_t;

// Where sources deliver committed changes. Implemented by the daemon's Pipeline; tests may
// implement it to observe a source alone.
class ChangeSink {
 public:
  virtual ~ChangeSink() = default;
  // Back-pressure: when false the source must stop reading new transactions (it may finish
  // the one it is in) and keep its connection alive.
  virtual bool accepting() const = 0;
  virtual void begin(class Source& source) = 0;
  virtual void change(class Source& source, const ChangeEvent& event) = 0;
  // Every rule of the table, with every row value unknown (gap, malformed payload, delete
  // seen by polling), as part of the current transaction.
  virtual void widen_table(class Source& source, std::string_view schema, std::string_view table,
                           Unknown why) = 0;
  // The transaction is committed. `position` is handed back to Source::confirm once every
  // invalidation of this and every earlier transaction of this source is applied in Redis.
  // `commit_time_us` is the commit's wall-clock time (µs since the Unix epoch) or 0 if unknown.
  virtual void commit(class Source& source, Position position, std::int64_t commit_time_us) = 0;
  // The source lost its connection mid-transaction: drop what it delivered since begin().
  virtual void abort(class Source& source) = 0;
  // A pg_logical_emit_message() with prefix kEmittedPrefix ("pgbust"), at `lsn`: when
  // `transactional`, part of the current transaction (applied with it after its commit).
  // Default: ignored.
  virtual void message(class Source& source, Position lsn, bool transactional,
                       std::string_view content) {
    (void)source, (void)lsn, (void)transactional, (void)content;
  }
};

// Standby: connected and working, but another instance holds what this source reads (the
// replication slot, the NOTIFY or poll source's advisory lock); it takes over when that is
// released. Several hosts running the same configuration have one active source each.
enum class SourceState : std::uint8_t {
  Connecting,
  Starting,
  Streaming,
  BackingOff,
  Stopped,
  Standby
};
std::string_view to_string(SourceState state);

// What a source reports for the status line and metrics.
struct SourceStatus {
  SourceState state = SourceState::Connecting;
  std::string position;         // human form: "0/16B3748" or "id=42"
  std::int64_t lag_bytes = -1;  // -1 when not applicable
  double lag_seconds = -1;      // -1 when unknown
  std::uint64_t changes = 0;    // row changes delivered
  std::uint64_t transactions = 0;
  std::uint64_t reconnects = 0;
  std::uint64_t errors = 0;
  std::string last_error;
  // What keeps this source from being trusted although it may be streaming: an open gap
  // (changes may have been missed and the widening that covers them is not applied yet), a
  // record that could not be saved. Non-empty makes the verdict degraded (promise 8).
  std::string degraded;
  // Rule tables this source should see and cannot (the logical source: not in the
  // publication); -1 when the source does not check.
  std::int64_t uncovered_tables = -1;
  // Payloads refused, by reason (the NOTIFY source's signature checks): metric
  // pgbust_<source>_rejected_total{reason}.
  std::vector<std::pair<std::string, std::uint64_t>> rejected = {};
  // While standby: who holds what this source waits for, as the server tells it ("slot
  // \"pgbust\" is active for PID 4242 (client 10.0.0.5)"); empty otherwise.
  std::string standby = {};
};

class Source : public Pollable {
 public:
  virtual const std::string& name() const = 0;  // "logical", "notify", "poll"
  // Everything up to and including `position` is applied in Redis: the source may persist
  // or acknowledge it. Called in order of commit().
  virtual void confirm(Position position) = 0;
  virtual SourceStatus status() const = 0;
  // A position as operators read it ("0/16B3748" for an LSN). Default: decimal.
  virtual std::string format_position(Position position) const { return std::to_string(position); }
  // The rules were reloaded: a source that reads only what rules need (columns, tables)
  // adjusts. Called between transactions. Default: nothing to do.
  virtual void rules_changed(const rules::RuleSet&) {}
  // A second connection of the source's that the loop must watch too (the logical source's
  // publication coverage check), or null. Valid as long as the source.
  virtual Pollable* side() { return nullptr; }
  // Stop reading new transactions (SIGTERM drain); confirm() keeps working.
  virtual void stop_reading() = 0;
  // Close connections. Idempotent, never throws.
  virtual void close() noexcept = 0;
};

}  // namespace pgbust
