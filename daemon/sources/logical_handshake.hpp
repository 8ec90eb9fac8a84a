// The logical source's identifying phase: IDENTIFY_SYSTEM, publication, table and slot checks,
// slot creation and START_REPLICATION, one command at a time on a non-blocking connection.
#pragma once

#include <libpq-fe.h>

#include <optional>
#include <string>
#include <vector>

#include "pgbust/pg/catalog.hpp"
#include "pgbust/pg/libpq.hpp"
#include "pgbust/sources/logical.hpp"
#include "pgbust/sources/slot_record.hpp"

namespace pgbust::detail {

class LogicalSetup {
 public:
  explicit LogicalSetup(const LogicalSourceOptions& options) : opt_(options) {}

  // Sends IDENTIFY_SYSTEM. START_REPLICATION will resume from the later of `resume_from`
  // and the slot's confirmed position (from the slot's alone after a gap). `settled`: every
  // transaction delivered before is confirmed (a gap waits for that: positions from before
  // it may belong to another slot or system).
  void begin(PGconn* conn, Position resume_from, bool settled);
  // Takes the results that have arrived (after PQconsumeInput) and sends the next command;
  // the caller flushes. True once START_REPLICATION switched the connection to streaming.
  // Throws Error naming the command, the server and the server's text, or what is wrong.
  bool on_input();

  const std::string& command() const { return command_; }  // the command in flight
  // Another connection streams the slot (pg_replication_slots.active_pid, or
  // START_REPLICATION failing with 55006 object_in_use, or CREATE_REPLICATION_SLOT racing
  // another instance's): nothing is in flight; recheck() looks again and starts streaming
  // once the slot is free. holder(): who has it, as the server tells it.
  bool standby() const { return standby_; }
  const std::string& holder() const { return holder_; }
  void recheck();
  Position slot_confirmed() const { return slot_confirmed_; }
  Position start_from() const { return start_from_; }
  Position server_wal_end() const { return wal_end_; }  // IDENTIFY_SYSTEM's xlogpos
  // The publication's coverage of the rule tables as this connect found it (no tables when
  // the rules name none).
  const pgcatalog::Coverage& coverage() const { return coverage_; }
  // Whether this stream may have missed changes (slot_record.hpp), decided before the slot
  // is created or streamed; and what the slot record should say once it is closed.
  const std::optional<std::string>& gap() const { return gap_; }
  slot::Record record() const;

 private:
  enum class Step { IdentifySystem, CheckPublication, CheckTables, CheckSlot, CreateSlot, Start };
  void send(Step step);
  void finish();  // the current command's results are all in
  void check_slot(int rows);
  void wait_for_slot(std::string holder);
  void decide_gap(bool exists, const std::string& wal_status);
  std::string cell(int row, int col) const;
  std::string server() const { return pg::describe(conn_); }

  const LogicalSourceOptions& opt_;
  PGconn* conn_ = nullptr;
  Step step_ = Step::IdentifySystem;
  std::string command_;
  pg::Result result_;
  std::optional<std::string> error_;
  std::string error_state_, error_text_;  // the SQLSTATE and the server's text of error_
  bool standby_ = false;
  std::string holder_;
  std::string db_, system_;
  std::optional<std::string> gap_;
  bool settled_ = true;
  Position resume_from_ = 0, slot_confirmed_ = 0, start_from_ = 0, wal_end_ = 0;
  pgbust::pgcatalog::Coverage coverage_;
};

}  // namespace pgbust::detail
