// Builders for pgoutput (protocol version 1) messages, written the way the server's pq_send*
// functions do (network byte order), so the decoder's unit tests and the micro-benchmarks
// run on the bytes a walsender sends, without a server.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pgbust::test {

// One message.
struct Msg {
  std::string b;
  explicit Msg(char type) { b.push_back(type); }
  Msg& u8(std::uint8_t v) {
    b.push_back(static_cast<char>(v));
    return *this;
  }
  Msg& u16(std::uint16_t v) { return u8(static_cast<std::uint8_t>(v >> 8)).u8(v & 0xff); }
  Msg& u32(std::uint32_t v) { return u16(static_cast<std::uint16_t>(v >> 16)).u16(v & 0xffff); }
  Msg& u64(std::uint64_t v) {
    return u32(static_cast<std::uint32_t>(v >> 32)).u32(v & 0xffffffffu);
  }
  Msg& str(std::string_view s) {
    b.append(s);
    b.push_back('\0');
    return *this;
  }
  Msg& raw(std::string_view s) {
    b.append(s);
    return *this;
  }
  // One text column of a TupleData: 't', length, bytes.
  Msg& text(std::string_view s) {
    u8('t').u32(static_cast<std::uint32_t>(s.size()));
    return raw(s);
  }
  // TupleData: each column is "n" (NULL), "u" (unchanged TOAST) or "t:<text>".
  Msg& tuple(const std::vector<std::string>& cols) {
    u16(static_cast<std::uint16_t>(cols.size()));
    for (const auto& c : cols) {
      if (c == "n" || c == "u") {
        u8(static_cast<std::uint8_t>(c[0]));
      } else if (c.starts_with("t:")) {
        text(std::string_view(c).substr(2));
      } else {
        throw std::invalid_argument("tuple column '" + c + "': expected n, u or t:<text>");
      }
    }
    return *this;
  }
  operator std::string_view() const { return b; }
};

// A relation's column: part of the replica identity, name, type OID (25: text).
struct Col {
  bool key;
  std::string name;
  std::uint32_t type = 25;
};

// 'R': a relation; `ident` is the replica identity ('d', 'f', 'i', 'n').
inline Msg relation_msg(std::uint32_t oid, std::string_view schema, std::string_view name,
                        char ident, const std::vector<Col>& cols) {
  Msg m('R');
  m.u32(oid).str(schema).str(name).u8(static_cast<std::uint8_t>(ident));
  m.u16(static_cast<std::uint16_t>(cols.size()));
  for (const auto& c : cols) m.u8(c.key ? 1 : 0).str(c.name).u32(c.type).u32(0xffffffffu);
  return m;
}

// The same with text-typed columns; `key` names the replica identity columns.
inline std::string relation_msg(std::uint32_t oid, std::string_view schema, std::string_view name,
                                char ident, const std::vector<std::string>& columns,
                                const std::vector<std::string>& key) {
  std::vector<Col> cols;
  for (const auto& c : columns) {
    bool is_key = false;
    for (const auto& k : key) is_key = is_key || k == c;
    cols.push_back({is_key, c});
  }
  return relation_msg(oid, schema, name, ident, cols).b;
}

// 'B' and 'C'.
inline std::string begin_msg(std::uint64_t final_lsn, std::int64_t commit_time, std::uint32_t xid) {
  Msg m('B');
  m.u64(final_lsn).u64(static_cast<std::uint64_t>(commit_time)).u32(xid);
  return m.b;
}

inline std::string commit_msg(std::uint64_t commit_lsn, std::uint64_t end_lsn,
                              std::int64_t commit_time) {
  Msg m('C');
  m.u8(0).u64(commit_lsn).u64(end_lsn).u64(static_cast<std::uint64_t>(commit_time));
  return m.b;
}

}  // namespace pgbust::test
