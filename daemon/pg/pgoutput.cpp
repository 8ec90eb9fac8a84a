// The pgoutput decoder: protocol version 1 messages into ChangeEvents, with a relation cache.
#include "pgbust/pg/pgoutput.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>

#include "pgbust/core/quote.hpp"
#include "pgbust/pg/libpq.hpp"

namespace pgbust::pgoutput {

std::string_view to_string(Kind kind) {
  switch (kind) {
    case Kind::Begin:
      return "Begin";
    case Kind::Commit:
      return "Commit";
    case Kind::Origin:
      return "Origin";
    case Kind::Relation:
      return "Relation";
    case Kind::Type:
      return "Type";
    case Kind::Insert:
      return "Insert";
    case Kind::Update:
      return "Update";
    case Kind::Delete:
      return "Delete";
    case Kind::Truncate:
      return "Truncate";
    case Kind::Message:
      return "Message";
  }
  return "?";
}

namespace {

// "'Z' (0x5a)", or just "(0x01)" for a byte that does not print.
std::string describe_byte(unsigned char b) {
  char buf[24];
  if (b >= 0x20 && b < 0x7f)
    std::snprintf(buf, sizeof buf, "'%c' (0x%02x)", b, b);
  else
    std::snprintf(buf, sizeof buf, "(0x%02x)", b);
  return buf;
}

}  // namespace

// Bounds-checked big-endian reads over one message; every failure names the message type,
// what was being read and the byte offset.
class Decoder::Reader {
 public:
  Reader(std::string_view msg, std::uint64_t wal_start) : msg_(msg), wal_start_(wal_start) {}

  std::size_t pos() const { return pos_; }
  std::size_t remaining() const { return msg_.size() - pos_; }
  void set_kind(Kind k) { kind_ = k; }

  std::uint8_t u8(const char* what) {
    need(1, what);
    return static_cast<std::uint8_t>(msg_[pos_++]);
  }
  std::uint16_t u16(const char* what) {
    need(2, what);
    auto v = static_cast<std::uint16_t>((byte(0) << 8) | byte(1));
    pos_ += 2;
    return v;
  }
  std::uint32_t u32(const char* what) {
    need(4, what);
    std::uint32_t v = (static_cast<std::uint32_t>(byte(0)) << 24) |
                      (static_cast<std::uint32_t>(byte(1)) << 16) |
                      (static_cast<std::uint32_t>(byte(2)) << 8) | byte(3);
    pos_ += 4;
    return v;
  }
  std::uint64_t u64(const char* what) {
    need(8, what);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | byte(i);
    pos_ += 8;
    return v;
  }
  std::int32_t i32(const char* what) { return static_cast<std::int32_t>(u32(what)); }
  std::int64_t i64(const char* what) { return static_cast<std::int64_t>(u64(what)); }

  // A NUL-terminated string.
  std::string_view cstring(const char* what) {
    const void* nul = std::memchr(msg_.data() + pos_, '\0', remaining());
    if (nul == nullptr) fail(std::string("unterminated string for ") + what);
    auto len = static_cast<std::size_t>(static_cast<const char*>(nul) - (msg_.data() + pos_));
    std::string_view s = msg_.substr(pos_, len);
    pos_ += len + 1;
    return s;
  }
  std::string_view bytes(std::size_t n, const char* what) {
    need(n, what);
    std::string_view s = msg_.substr(pos_, n);
    pos_ += n;
    return s;
  }

  void expect_end() {
    if (remaining() != 0)
      fail(std::to_string(remaining()) + " unexpected bytes after the end of the message");
  }

  [[noreturn]] void fail(const std::string& problem) const { fail_at(pos_, problem); }

  [[noreturn]] void fail_at(std::size_t at, const std::string& problem) const {
    std::string what = "pgoutput: ";
    if (kind_) {
      what += std::string(to_string(*kind_)) + " message " +
              describe_byte(static_cast<unsigned char>(msg_[0])) + ": ";
    }
    what += problem + " at byte " + std::to_string(at) + " of " + std::to_string(msg_.size()) +
            "-byte XLogData at " + pg::format_lsn(wal_start_);
    throw ProtocolError(what);
  }

 private:
  void need(std::size_t n, const char* what) const {
    if (remaining() < n)
      fail("truncated: need " + std::to_string(n) + " bytes for " + what + ", have " +
           std::to_string(remaining()));
  }
  std::uint32_t byte(int i) const { return static_cast<unsigned char>(msg_[pos_ + i]); }

  std::string_view msg_;
  std::uint64_t wal_start_;
  std::size_t pos_ = 0;
  std::optional<Kind> kind_;
};

const Decoded& Decoder::decode(std::string_view message, std::uint64_t wal_start) {
  Reader in(message, wal_start);
  if (message.empty()) in.fail("empty message");
  const auto type = static_cast<unsigned char>(message[0]);
  in.u8("message type");
  out_.relation = nullptr;
  out_.relation_changed = false;
  out_.events = {};
  switch (type) {
    case 'B':
      in.set_kind(out_.kind = Kind::Begin);
      out_.begin.final_lsn = in.u64("final LSN");
      out_.begin.commit_time = in.i64("commit timestamp");
      out_.begin.xid = in.u32("xid");
      break;
    case 'C':
      in.set_kind(out_.kind = Kind::Commit);
      out_.commit.flags = in.u8("flags");
      out_.commit.commit_lsn = in.u64("commit LSN");
      out_.commit.end_lsn = in.u64("end LSN");
      out_.commit.commit_time = in.i64("commit timestamp");
      break;
    case 'O':
      in.set_kind(out_.kind = Kind::Origin);
      out_.origin.commit_lsn = in.u64("origin commit LSN");
      out_.origin.name = in.cstring("origin name");
      break;
    case 'R':
      in.set_kind(out_.kind = Kind::Relation);
      decode_relation(in);
      break;
    case 'Y':
      in.set_kind(out_.kind = Kind::Type);
      out_.type.oid = in.u32("type OID");
      out_.type.schema = in.cstring("type namespace");
      if (out_.type.schema.empty()) out_.type.schema = "pg_catalog";
      out_.type.name = in.cstring("type name");
      break;
    case 'I':
      in.set_kind(out_.kind = Kind::Insert);
      decode_insert(in);
      break;
    case 'U':
      in.set_kind(out_.kind = Kind::Update);
      decode_update(in);
      break;
    case 'D':
      in.set_kind(out_.kind = Kind::Delete);
      decode_delete(in);
      break;
    case 'T':
      in.set_kind(out_.kind = Kind::Truncate);
      decode_truncate(in);
      break;
    case 'M': {
      in.set_kind(out_.kind = Kind::Message);
      std::uint8_t flags = in.u8("flags");
      out_.message.transactional = (flags & 1) != 0;
      out_.message.lsn = in.u64("message LSN");
      out_.message.prefix = in.cstring("message prefix");
      std::uint32_t len = in.u32("content length");
      out_.message.content = in.bytes(len, "message content");
      break;
    }
    default:
      // Streaming ('S', 'E', 'c', 'A') and two-phase messages need protocol 2/3 options
      // pgbust never requests: anything else here is a protocol error, never skipped.
      in.fail_at(0, "unknown message type " + describe_byte(type));
  }
  in.expect_end();
  return out_;
}

const Relation* Decoder::relation(std::uint32_t oid) const {
  auto it = relations_.find(oid);
  return it == relations_.end() ? nullptr : it->second.get();
}

Relation& Decoder::lookup(Reader& in, std::uint32_t oid) {
  if (last_relation_ != nullptr && last_relation_->oid == oid) return *last_relation_;
  auto it = relations_.find(oid);
  if (it == relations_.end())
    in.fail_at(in.pos() - 4,
               "relation OID " + std::to_string(oid) + " was not described by a Relation message");
  last_relation_ = it->second.get();
  return *last_relation_;
}

void Decoder::decode_relation(Reader& in) {
  Relation& r = scratch_;
  r.oid = in.u32("relation OID");
  r.table.schema = in.cstring("namespace");
  if (r.table.schema.empty()) r.table.schema = "pg_catalog";
  r.table.name = in.cstring("relation name");
  r.replica_identity = static_cast<char>(in.u8("replica identity"));
  std::uint16_t ncols = in.u16("column count");
  r.table.columns.resize(ncols);
  r.table.key.assign(ncols, false);
  r.type_oids.resize(ncols);
  r.type_mods.resize(ncols);
  for (std::uint16_t i = 0; i < ncols; ++i) {
    std::uint8_t flags = in.u8("column flags");
    r.table.key[i] = (flags & 1) != 0;
    r.table.columns[i] = in.cstring("column name");
    r.type_oids[i] = in.u32("column type OID");
    r.type_mods[i] = in.i32("column type modifier");
  }

  auto& slot = relations_[r.oid];
  if (!slot) {
    slot = std::make_unique<Relation>(r);
    slot->table.generation = 1;
    out_.relation_changed = true;
  } else {
    Relation& cur = *slot;
    bool same = cur.table.schema == r.table.schema && cur.table.name == r.table.name &&
                cur.replica_identity == r.replica_identity &&
                cur.table.columns == r.table.columns && cur.table.key == r.table.key &&
                cur.type_oids == r.type_oids && cur.type_mods == r.type_mods;
    if (!same) {
      std::uint64_t generation = cur.table.generation + 1;
      cur = r;  // same object: TableInfo* held by bind caches stays valid
      cur.table.generation = generation;
      out_.relation_changed = true;
    }
  }
  out_.relation = slot.get();
}

void Decoder::read_tuple(Reader& in, const Relation& rel, RowImage& row, bool key_only) {
  std::size_t at = in.pos();
  std::uint16_t ncols = in.u16("tuple column count");
  if (ncols != rel.table.columns.size())
    in.fail_at(at, "tuple has " + std::to_string(ncols) + " columns but relation " +
                       quote_for_log(rel.table.qualified()) + " (OID " + std::to_string(rel.oid) +
                       ") has " + std::to_string(rel.table.columns.size()));
  row.values.resize(ncols);
  row.missing_why = Unknown::NotInImage;
  for (std::uint16_t i = 0; i < ncols; ++i) {
    std::size_t col_at = in.pos();
    std::uint8_t kind = in.u8("column kind");
    Datum& d = row.values[i];
    switch (kind) {
      case 'n':
        d = Datum::null();
        break;
      case 'u':
        d = Datum::unknown(Unknown::UnchangedToast);
        break;
      case 't': {
        std::int32_t len = in.i32("column length");
        if (len < 0) in.fail("negative length " + std::to_string(len) + " for a text column");
        d = Datum::value(in.bytes(static_cast<std::size_t>(len), "column value"));
        break;
      }
      case 'b':
        in.fail_at(col_at, "binary column format for column \"" + rel.table.columns[i] +
                               "\" (pgbust does not request binary mode)");
      default:
        in.fail_at(col_at, "unknown column format " + describe_byte(kind) + " for column \"" +
                               rel.table.columns[i] + "\"");
    }
    // A key tuple sends NULL for columns outside the replica identity: they are not known.
    if (key_only && !rel.table.key[i]) d = Datum::unknown(Unknown::NotInImage);
  }
}

void Decoder::decode_insert(Reader& in) {
  Relation& rel = lookup(in, in.u32("relation OID"));
  std::size_t at = in.pos();
  std::uint8_t tag = in.u8("tuple tag");
  if (tag != 'N') in.fail_at(at, "expected new tuple 'N', got " + describe_byte(tag));
  read_tuple(in, rel, new_row_, false);
  events_.resize(1);
  events_[0] = ChangeEvent{SourceKind::Logical, Op::Insert, &rel.table, nullptr, &new_row_};
  out_.relation = &rel;
  out_.events = std::span<const ChangeEvent>(events_.data(), 1);
}

void Decoder::decode_update(Reader& in) {
  Relation& rel = lookup(in, in.u32("relation OID"));
  std::size_t at = in.pos();
  std::uint8_t tag = in.u8("tuple tag");
  const RowImage* old_row = nullptr;
  if (tag == 'K' || tag == 'O') {
    read_tuple(in, rel, old_row_, tag == 'K');
    old_row = &old_row_;
    at = in.pos();
    tag = in.u8("tuple tag");
  }
  if (tag != 'N') in.fail_at(at, "expected tuple tag 'K', 'O' or 'N', got " + describe_byte(tag));
  read_tuple(in, rel, new_row_, false);
  events_.resize(1);
  events_[0] = ChangeEvent{SourceKind::Logical, Op::Update, &rel.table, old_row, &new_row_};
  out_.relation = &rel;
  out_.events = std::span<const ChangeEvent>(events_.data(), 1);
}

void Decoder::decode_delete(Reader& in) {
  Relation& rel = lookup(in, in.u32("relation OID"));
  std::size_t at = in.pos();
  std::uint8_t tag = in.u8("tuple tag");
  if (tag != 'K' && tag != 'O')
    in.fail_at(at, "expected old tuple 'K' or 'O', got " + describe_byte(tag));
  read_tuple(in, rel, old_row_, tag == 'K');
  events_.resize(1);
  events_[0] = ChangeEvent{SourceKind::Logical, Op::Delete, &rel.table, &old_row_, nullptr};
  out_.relation = &rel;
  out_.events = std::span<const ChangeEvent>(events_.data(), 1);
}

void Decoder::decode_truncate(Reader& in) {
  std::size_t at = in.pos();
  std::uint32_t n = in.u32("relation count");
  std::uint8_t flags = in.u8("options");
  out_.truncate_cascade = (flags & 1) != 0;
  out_.truncate_restart_identity = (flags & 2) != 0;
  if (in.remaining() / 4 < n)
    in.fail_at(at, "truncated: " + std::to_string(n) + " relation OIDs announced, room for " +
                       std::to_string(in.remaining() / 4));
  events_.resize(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    Relation& rel = lookup(in, in.u32("relation OID"));
    events_[i] = ChangeEvent{SourceKind::Logical, Op::Truncate, &rel.table, nullptr, nullptr};
  }
  out_.events = std::span<const ChangeEvent>(events_.data(), n);
}

namespace {

std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void put_u64(char* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<char>(v & 0xff);
}

}  // namespace

ServerMessage parse_server_message(std::string_view msg) {
  ServerMessage m;
  const auto type = msg.empty() ? 0 : static_cast<unsigned char>(msg[0]);
  if (type == 'w' && msg.size() >= 25) {
    m.type = ServerMessage::Type::XLogData;
    m.wal_start = get_u64(msg.data() + 1);
    m.wal_end = get_u64(msg.data() + 9);
    m.send_time = static_cast<std::int64_t>(get_u64(msg.data() + 17));
    m.payload = msg.substr(25);
    return m;
  }
  if (type == 'k' && msg.size() >= 18) {
    m.type = ServerMessage::Type::Keepalive;
    m.wal_end = get_u64(msg.data() + 1);
    m.send_time = static_cast<std::int64_t>(get_u64(msg.data() + 9));
    m.reply_requested = msg[17] != 0;
    return m;
  }
  throw ProtocolError(
      "replication stream: " + std::string(type == 'w' || type == 'k' ? "short " : "unknown ") +
      "CopyData message type " + describe_byte(type) + " (" + std::to_string(msg.size()) +
      " bytes)");
}

std::array<char, 34> status_update(std::uint64_t position, std::int64_t now_pg_us,
                                   bool reply_requested) {
  std::array<char, 34> m{};
  m[0] = 'r';
  put_u64(m.data() + 1, position);   // written
  put_u64(m.data() + 9, position);   // flushed
  put_u64(m.data() + 17, position);  // applied
  put_u64(m.data() + 25, static_cast<std::uint64_t>(now_pg_us));
  m[33] = reply_requested ? 1 : 0;
  return m;
}

std::int64_t pg_now_us() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return us - kPgEpochOffsetUs;
}

}  // namespace pgbust::pgoutput
