// The pgoutput (logical replication protocol version 1) decoder: bytes in, ChangeEvents out,
// and the streaming-replication CopyData messages around it. Pure: no I/O. Decodes into
// reusable buffers whose string_views point into the message.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pgbust/core/change.hpp"
#include "pgbust/core/error.hpp"

namespace pgbust::pgoutput {

// A malformed or unsupported message. It is a ConnectionError: the source reconnects (and the
// same bytes will come again, so the error stays visible), it never skips the message.
class ProtocolError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

// Microseconds between the PostgreSQL epoch (2000-01-01) and the Unix epoch.
inline constexpr std::int64_t kPgEpochOffsetUs = 946'684'800'000'000LL;

enum class Kind : std::uint8_t {
  Begin,     // 'B'
  Commit,    // 'C'
  Origin,    // 'O'
  Relation,  // 'R'
  Type,      // 'Y'
  Insert,    // 'I'
  Update,    // 'U'
  Delete,    // 'D'
  Truncate,  // 'T'
  Message,   // 'M'
};

std::string_view to_string(Kind kind);

struct Begin {
  std::uint64_t final_lsn = 0;
  std::int64_t commit_time = 0;  // µs since 2000-01-01
  std::uint32_t xid = 0;
};

struct Commit {
  std::uint8_t flags = 0;
  std::uint64_t commit_lsn = 0;
  std::uint64_t end_lsn = 0;     // the position to confirm once this transaction is applied
  std::int64_t commit_time = 0;  // µs since 2000-01-01
};

struct Origin {
  std::uint64_t commit_lsn = 0;
  std::string_view name;
};

struct Type {
  std::uint32_t oid = 0;
  std::string_view schema;  // "pg_catalog" when the server sent an empty namespace
  std::string_view name;
};

// pg_logical_emit_message(); only sent with the `messages 'true'` option.
struct LogicalMessage {
  bool transactional = false;
  std::uint64_t lsn = 0;
  std::string_view prefix;
  std::string_view content;
};

// One relation as the stream described it. The TableInfo lives at a stable address for as
// long as the decoder does, whatever Relation messages follow for the same OID.
struct Relation {
  std::uint32_t oid = 0;
  char replica_identity = 'd';  // pg_class.relreplident: d(efault), n(othing), f(ull), i(ndex)
  TableInfo table;
  std::vector<std::uint32_t> type_oids;
  std::vector<std::int32_t> type_mods;
};

// The result of decoding one message: `kind` says which members are meaningful.
struct Decoded {
  Kind kind = Kind::Begin;
  Begin begin;
  Commit commit;
  Origin origin;
  Type type;
  LogicalMessage message;
  const Relation* relation = nullptr;  // Relation / Insert / Update / Delete
  bool relation_changed = false;       // Relation: layout differs from before (generation bumped)
  bool truncate_cascade = false;
  bool truncate_restart_identity = false;
  // Insert / Update / Delete: one event; Truncate: one per relation. The events point into
  // the decoder and into the message bytes: valid until the next decode() or until those
  // bytes are freed.
  std::span<const ChangeEvent> events;
};

class Decoder {
 public:
  // Decodes one pgoutput message (the payload of an XLogData message). `wal_start` is the
  // XLogData's start position, used only in error messages. Throws ProtocolError naming the
  // message type byte and the byte offset of the problem.
  const Decoded& decode(std::string_view message, std::uint64_t wal_start = 0);

  // The relation with this OID, or nullptr if no Relation message described it yet.
  const Relation* relation(std::uint32_t oid) const;
  std::size_t relation_count() const { return relations_.size(); }

 private:
  class Reader;
  void decode_relation(Reader& in);
  void decode_insert(Reader& in);
  void decode_update(Reader& in);
  void decode_delete(Reader& in);
  void decode_truncate(Reader& in);
  Relation& lookup(Reader& in, std::uint32_t oid);
  // Reads a TupleData for `rel` into `row`. `key_only`: a 'K' tuple, non-key columns unknown.
  void read_tuple(Reader& in, const Relation& rel, RowImage& row, bool key_only);

  std::unordered_map<std::uint32_t, std::unique_ptr<Relation>> relations_;
  Relation* last_relation_ = nullptr;  // one-entry lookup cache for runs of the same table
  Decoded out_;
  RowImage old_row_;
  RowImage new_row_;
  std::vector<ChangeEvent> events_;
  Relation scratch_;  // a Relation message is parsed here, then compared and swapped in
};

// ---- The streaming replication CopyData messages that carry pgoutput ----------------------

// One CopyData message from the walsender: XLogData ('w') or Primary keepalive ('k').
struct ServerMessage {
  enum class Type : std::uint8_t { XLogData, Keepalive };
  Type type = Type::Keepalive;
  std::uint64_t wal_start = 0;   // XLogData: where its data starts
  std::uint64_t wal_end = 0;     // the server's WAL end
  std::int64_t send_time = 0;    // µs since 2000-01-01
  bool reply_requested = false;  // Keepalive: answer at once
  std::string_view payload;      // XLogData: one pgoutput message
};

// Throws ProtocolError for an unknown type or a message too short for its type.
ServerMessage parse_server_message(std::string_view msg);

// A Standby Status Update ('r') reporting `position` as written, flushed and applied.
std::array<char, 34> status_update(std::uint64_t position, std::int64_t now_pg_us,
                                   bool reply_requested);

// The current wall-clock time in µs since the PostgreSQL epoch.
std::int64_t pg_now_us();

}  // namespace pgbust::pgoutput
