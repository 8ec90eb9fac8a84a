// The logical source's slot record and the gap decision (see slot_record.hpp).
#include "pgbust/sources/slot_record.hpp"

#include "pgbust/core/error.hpp"
#include "pgbust/core/json.hpp"
#include "pgbust/core/state_file.hpp"

namespace pgbust::slot {

namespace {

const char* kExpected =
    "expected a JSON object {\"version\": 1, \"system_identifier\": text, \"database\": text, "
    "\"slot\": text, \"confirmed\": text, \"open_gap\": text}";

void field(std::string& out, const char* name, const std::string& value) {
  out += ", \"";
  out += name;
  out += "\": ";
  json::append_quoted(out, value);
}

}  // namespace

std::string serialize(const Record& r) {
  std::string out = "{\"version\": 1";
  field(out, "system_identifier", r.system_identifier);
  field(out, "database", r.database);
  field(out, "slot", r.slot);
  field(out, "confirmed", r.confirmed);
  field(out, "open_gap", r.open_gap);
  return out + "}\n";
}

Record parse(std::string_view text) {
  json::Value v;
  try {
    v = json::parse(text);
  } catch (const Error& e) {
    throw Error(std::string("not JSON (") + e.what() + "); " + kExpected);
  }
  if (!v.is_object()) throw Error(std::string("not an object; ") + kExpected);
  auto str = [&](const char* name) {
    const json::Value* f = v.find(name);
    if (!f || !f->is_string()) throw Error(std::string("no text \"") + name + "\"; " + kExpected);
    return f->text();
  };
  const json::Value* version = v.find("version");
  if (!version || !version->is_number() || version->text() != "1")
    throw Error(std::string("unknown \"version\" (this pgbust writes 1); ") + kExpected);
  return {str("system_identifier"), str("database"), str("slot"), str("confirmed"),
          str("open_gap")};
}

std::filesystem::path file_for(const std::string& state_dir, const std::string& slot) {
  return std::filesystem::path(state_dir) / (slot + ".slot");
}

Loaded load(const std::filesystem::path& file) {
  Loaded out;
  try {
    auto text = read_state_file(file);
    if (!text) return out;
    out.record = parse(*text);
    out.status = Loaded::Status::Ok;
  } catch (const Error& e) {
    out.status = Loaded::Status::Corrupt;
    std::string what = e.what();
    out.error = what.rfind("cannot ", 0) == 0 ? what : file.string() + ": " + what;
  }
  return out;
}

void save(const std::filesystem::path& file, const Record& r) {
  write_state_file(file, serialize(r));
}

OnGap parse_on_gap(std::string_view s) {
  if (s == "fail") return OnGap::Fail;
  if (s == "widen_at_start") return OnGap::WidenAtStart;
  return OnGap::Widen;
}

Decision decide(const Facts& f, const Loaded& record, OnGap on_gap) {
  const std::string slot = "replication slot \"" + f.slot + "\" on " + f.server;
  if (f.exists && f.wal_status == "lost")
    throw Error(slot +
                " was invalidated by PostgreSQL (wal_status lost: it held more WAL than "
                "max_slot_wal_keep_size) and can no longer stream: the changes it held are "
                "gone. Either drop it (SELECT pg_drop_replication_slot('" +
                f.slot +
                "')) and let pgbust re-create it, which widens every rule once (a keyspace "
                "pass per pattern, every counter bumped), or run pgbust flush for the same "
                "effect by hand; raise max_slot_wal_keep_size so an outage cannot do it again");
  Decision d;
  const Record& r = record.record;
  switch (record.status) {
    case Loaded::Status::Corrupt:
      d.gap = "the slot record is unreadable (" + record.error +
              "), so whether changes were missed on " + slot + " is unknown";
      break;
    case Loaded::Status::Ok:
      if (!r.open_gap.empty())
        d.gap = "a gap found earlier on " + slot + " was not closed before pgbust stopped (" +
                r.open_gap + ")";
      else if (r.system_identifier != f.system_identifier)
        d.gap = slot + " is on system " + f.system_identifier + ", but pgbust last streamed it " +
                "from system " + r.system_identifier +
                " (a restore or a new primary): " + "changes in between are unknown";
      else if (!f.exists)
        d.gap = slot + " vanished (dropped, or invalidated and removed) after pgbust confirmed " +
                r.confirmed + ": it is re-created at the current WAL end, and changes in " +
                "between are unknown";
      break;
    case Loaded::Status::Missing:
      if (on_gap == OnGap::WidenAtStart)
        d.gap = "first start on " + slot + " (on_gap: widen_at_start): changes committed " +
                "before the slot existed are unknown";
      else if (!f.exists)
        d.notice = "first start: " + slot + " is created now; changes committed before it " +
                   "existed are not covered (on_gap: widen_at_start widens every rule once " +
                   "instead)";
      break;
  }
  if (d.gap && on_gap == OnGap::Fail)
    throw Error(*d.gap +
                "; on_gap: fail, so pgbust will not stream. Run pgbust flush (or set "
                "on_gap: widen) to invalidate what the gap may hold, then remove the slot "
                "record to accept it");
  return d;
}

}  // namespace pgbust::slot
