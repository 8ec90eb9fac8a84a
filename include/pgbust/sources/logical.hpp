// The logical replication source: streams pgoutput from a slot over libpq's replication
// protocol, as a phased state machine (connecting → identifying → streaming → backing off)
// driven by the single-threaded Loop, and acknowledges only what the pipeline confirmed.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pgbust/core/source.hpp"
#include "pgbust/sources/session_source.hpp"

namespace pgbust {

struct LogicalSourceOptions {
  std::string name = "logical";        // in every log line and the status
  std::string conninfo;                // libpq conninfo or URI; replication=database is added
  std::string slot = "pgbust";         // [a-z0-9_], at most 63 characters
  std::string publication = "pgbust";  // must exist (checked at every connect)
  bool create_slot = true;             // create the pgoutput slot when it is missing
  // Dry run: create the slot TEMPORARY (dropped by the server when the connection ends, so it
  // never holds WAL after pgbust exits; an existing slot of that name is an error), or stream
  // from an existing slot and never confirm a position to it (status updates report 0).
  bool temporary_slot = false;
  bool never_confirm = false;
  // The slot record's directory (slot_record.hpp); empty: no record, no gap detection.
  std::string state_dir;
  std::string on_gap = "widen";  // widen | fail | widen_at_start
  // "schema.table" (or "table" for public) of the rules this source serves: the ones the
  // publication does not cover are reported at every connect and every coverage_interval.
  std::vector<std::string> tables;
  // After a reload: the tables of the new rules this source serves (default: all they name).
  std::function<std::vector<std::string>(const rules::RuleSet&)> tables_of;
  // How often a side connection checks that the publication covers every rule table
  // (table swaps included); zero: only at connect.
  std::chrono::milliseconds coverage_interval{30'000};
  // Standby status updates at least this often (and soon after confirm() moves).
  std::chrono::milliseconds status_interval{10'000};
  // Server silence: ask for a reply at half of it, reconnect at all of it.
  std::chrono::milliseconds receive_timeout{60'000};
  // Connecting, and each setup command (creating a slot waits for running transactions).
  std::chrono::milliseconds setup_timeout{60'000};
  // Standby (another connection streams the slot: another pgbust host with the same config):
  // how often to look at the slot again on the open connection, taking over once it is free.
  std::chrono::milliseconds standby_interval{1000};
  // Reconnect delay: starts at min, doubles per failure up to max, with jitter.
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{30'000};
};

class LogicalSource final : public SessionSource {
 public:
  // No I/O here: the first Loop round starts connecting. Throws Error for invalid options.
  // close() sends the confirmed position one last time and ends the stream (bounded wait),
  // then closes; it does not call the sink.
  LogicalSource(LogicalSourceOptions options, ChangeSink& sink);
  ~LogicalSource() override;

  std::string format_position(Position position) const override;  // "0/16B3748"

  // The position reported to the server as flushed (sent at the next status update): what
  // the pipeline confirmed, or an idle WAL end once everything delivered is confirmed.
  Position reported() const;
  // The server's WAL end as last reported (keepalives, XLogData, IDENTIFY_SYSTEM), 0 if unknown.
  Position server_wal_end() const;
  // Rule tables the publication did not cover at the last check (empty: all covered).
  std::vector<std::string> uncovered_tables() const;
  // The coverage check's connection (null when coverage_interval is zero).
  Pollable* side() override;

 private:
  class Impl;
  const Impl& impl() const;
};

}  // namespace pgbust
