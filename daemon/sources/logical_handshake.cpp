// The logical source's identifying phase: setup commands sent one at a time, results checked.
#include "logical_handshake.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace pgbust::detail {

namespace {

std::string sql_literal(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string sql_ident(std::string_view s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

void LogicalSetup::begin(PGconn* conn, Position resume_from, bool settled) {
  conn_ = conn;
  resume_from_ = resume_from;
  settled_ = settled;
  slot_confirmed_ = start_from_ = 0;
  gap_.reset();
  coverage_ = {};
  result_.reset();
  error_.reset();
  standby_ = false;
  send(Step::IdentifySystem);
}

void LogicalSetup::recheck() {
  if (standby_) send(Step::CheckSlot);
}

void LogicalSetup::wait_for_slot(std::string holder) {
  standby_ = true;
  holder_ = std::move(holder);
  command_.clear();
  result_.reset();
}

void LogicalSetup::send(Step step) {
  step_ = step;
  standby_ = false;
  result_.reset();
  switch (step) {
    case Step::IdentifySystem:
      command_ = "IDENTIFY_SYSTEM";
      break;
    case Step::CheckPublication:
      command_ = "SELECT pubname FROM pg_catalog.pg_publication WHERE pubname = " +
                 sql_literal(opt_.publication);
      break;
    case Step::CheckTables:
      command_ = pgcatalog::coverage_sql(opt_.publication, opt_.tables);
      break;
    case Step::CheckSlot:
      // active_pid: another connection streams it (another pgbust host); its client address
      // as pg_stat_replication shows it (NULL for a local socket or without the privilege).
      command_ =
          "SELECT s.plugin, s.slot_type, s.database, s.confirmed_flush_lsn, s.wal_status, "
          "s.active_pid, r.client_addr, r.application_name FROM "
          "pg_catalog.pg_replication_slots s LEFT JOIN pg_catalog.pg_stat_replication r ON "
          "r.pid = s.active_pid WHERE s.slot_name = " +
          sql_literal(opt_.slot);
      break;
    case Step::CreateSlot:
      // The slot name is validated ([a-z0-9_]) by the source: no quoting needed.
      command_ = "CREATE_REPLICATION_SLOT " + opt_.slot +
                 (opt_.temporary_slot ? " TEMPORARY" : "") + " LOGICAL pgoutput NOEXPORT_SNAPSHOT";
      break;
    case Step::Start:
      start_from_ = std::max(resume_from_, slot_confirmed_);
      command_ = "START_REPLICATION SLOT " + opt_.slot + " LOGICAL " + pg::format_lsn(start_from_) +
                 " (proto_version '1', publication_names " +
                 sql_literal(sql_ident(opt_.publication)) +
                 // pg_logical_emit_message() invalidations (README); the option is 14+.
                 (PQserverVersion(conn_) >= 140000 ? ", messages 'true')" : ")");
      break;
  }
  spdlog::debug("{} [identifying]: sending {}", opt_.name, command_);
  if (PQsendQuery(conn_, command_.c_str()) == 0) pg::fail(conn_, "sending " + command_);
}

bool LogicalSetup::on_input() {
  if (standby_) return false;  // nothing in flight
  // PQgetResult blocks while libpq is busy: only take what has arrived.
  while (PQisBusy(conn_) == 0) {
    pg::Result r(PQgetResult(conn_));
    if (!r) {
      finish();
      return false;
    }
    auto st = PQresultStatus(r.get());
    if (st == PGRES_COPY_BOTH) return true;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
      result_ = std::move(r);
    else if (!error_) {
      error_ = command_ + " on " + server() + ": " + pg::error_text(r.get());
      const char* primary = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY);
      error_text_ = primary ? one_line(primary) : pg::error_text(r.get());
      const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
      error_state_ = state ? state : "";
    }
  }
  return false;
}

std::string LogicalSetup::cell(int row, int col) const {
  return PQgetisnull(result_.get(), row, col) ? std::string() : PQgetvalue(result_.get(), row, col);
}

void LogicalSetup::finish() {
  if (error_) {
    std::string e = std::move(*error_);
    error_.reset();
    // Another connection took the slot between the check and START_REPLICATION (55006
    // object_in_use: "replication slot ... is active for PID ..."), or created it first
    // (42710 duplicate_object): standby, like a slot found active.
    if (step_ == Step::Start && error_state_ == "55006") {
      wait_for_slot(error_text_);
      return;
    }
    if (step_ == Step::CreateSlot && error_state_ == "42710") {
      wait_for_slot("slot \"" + opt_.slot + "\" was just created by another connection");
      return;
    }
    throw Error(e);
  }
  if (!result_) throw ConnectionError(command_ + " on " + server() + ": no result");
  const int rows = PQntuples(result_.get());
  switch (step_) {
    case Step::IdentifySystem: {
      if (rows != 1 || PQnfields(result_.get()) < 4)
        throw Error("IDENTIFY_SYSTEM on " + server() + ": unexpected result shape");
      system_ = cell(0, 0);
      db_ = cell(0, 3);
      if (db_.empty())
        throw Error("IDENTIFY_SYSTEM on " + server() +
                    ": the connection is not to a database (logical replication needs one)");
      pg::parse_lsn(cell(0, 2), wal_end_);
      spdlog::debug("{} [identifying]: system {} timeline {} at {} database {}", opt_.name,
                    cell(0, 0), cell(0, 1), cell(0, 2), db_);
      send(Step::CheckPublication);
      break;
    }
    case Step::CheckPublication:
      if (rows == 0)
        throw Error("publication \"" + opt_.publication + "\" does not exist in database \"" + db_ +
                    "\" on " + server() + ": create it with CREATE PUBLICATION " +
                    sql_ident(opt_.publication) +
                    " FOR TABLE ... (pgbust setup prints the SQL for the rule tables)");
      send(opt_.tables.empty() ? Step::CheckSlot : Step::CheckTables);
      break;
    case Step::CheckTables:
      // Reported by the source (CoverageTracker), like every later check's.
      coverage_ = pgcatalog::read_coverage(result_.get(), opt_.publication);
      send(Step::CheckSlot);
      break;
    case Step::CheckSlot:
      check_slot(rows);
      break;
    case Step::CreateSlot:
      if (rows != 1 || PQnfields(result_.get()) < 2 || !pg::parse_lsn(cell(0, 1), slot_confirmed_))
        throw Error(command_ + " on " + server() + ": unexpected result shape");
      spdlog::info("{} [identifying]: created replication slot {} (pgoutput) at {}", opt_.name,
                   opt_.slot, pg::format_lsn(slot_confirmed_));
      send(Step::Start);
      break;
    case Step::Start:
      throw ConnectionError(command_ + " on " + server() + ": the server did not start streaming");
  }
}

void LogicalSetup::check_slot(int rows) {
  if (rows == 0) {
    if (!opt_.create_slot)
      throw Error("replication slot \"" + opt_.slot + "\" does not exist on " + server() +
                  ": create it (pgbust setup prints the SQL) or set create_slot: true");
    decide_gap(false, "");
    send(Step::CreateSlot);
    return;
  }
  if (opt_.temporary_slot)
    throw Error("replication slot \"" + opt_.slot + "\" already exists on " + server() +
                ": a dry run creates its own temporary slot (give --slot to use an existing one "
                "without confirming to it)");
  std::string plugin = cell(0, 0), type = cell(0, 1), db = cell(0, 2);
  if (type != "logical" || plugin != "pgoutput")
    throw Error("replication slot \"" + opt_.slot + "\" on " + server() + " is a " + type +
                " slot" + (plugin.empty() ? "" : " with plugin " + plugin) +
                ", pgbust needs a logical slot with plugin pgoutput");
  if (db != db_)
    throw Error("replication slot \"" + opt_.slot + "\" on " + server() +
                " belongs to database \"" + db + "\", not \"" + db_ + "\"");
  if (!PQgetisnull(result_.get(), 0, 5)) {
    std::string holder = "slot \"" + opt_.slot + "\" is active for PID " + cell(0, 5);
    const std::string client = cell(0, 6), app = cell(0, 7);
    if (!client.empty() || !app.empty())
      holder += " (" + (client.empty() ? "" : "client " + client) +
                (client.empty() || app.empty() ? "" : ", ") +
                (app.empty() ? "" : "application " + app) + ")";
    wait_for_slot(std::move(holder));
    return;
  }
  pg::parse_lsn(cell(0, 3), slot_confirmed_);
  decide_gap(true, cell(0, 4));
  send(Step::Start);
}

void LogicalSetup::decide_gap(bool exists, const std::string& wal_status) {
  if (opt_.state_dir.empty()) return;  // no record kept: nothing to compare with
  auto file = slot::file_for(opt_.state_dir, opt_.slot);
  slot::Facts facts{opt_.slot, server(), system_, exists, wal_status};
  slot::Decision d = slot::decide(facts, slot::load(file), slot::parse_on_gap(opt_.on_gap));
  if (d.notice) spdlog::warn("{} [identifying]: {}", opt_.name, *d.notice);
  if (!d.gap) return;
  if (!settled_)
    throw ConnectionError(*d.gap +
                          "; first waiting for the transactions delivered before it to be "
                          "applied (their positions belong to the old stream)");
  gap_ = d.gap;
  resume_from_ = 0;  // positions from before the gap mean nothing to this slot
  // Written before the slot is created or streamed: a crash from here until the widening is
  // applied still finds the gap at the next start.
  slot::Record r = record();
  r.open_gap = *d.gap;
  slot::save(file, r);
}

slot::Record LogicalSetup::record() const {
  return {system_, db_, opt_.slot, pg::format_lsn(slot_confirmed_), ""};
}

}  // namespace pgbust::detail
