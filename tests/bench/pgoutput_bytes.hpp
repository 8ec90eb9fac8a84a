// Builders for pgoutput (protocol version 1) messages, so micro-benchmarks run the decoder
// on the same bytes a walsender sends, without a server.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgbust::bench {

// One message, written big-endian as the protocol says.
struct Msg {
  std::string b;
  explicit Msg(char t) { b.push_back(t); }
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
  Msg& text(std::string_view s) {
    u8('t').u32(static_cast<std::uint32_t>(s.size()));
    b.append(s);
    return *this;
  }
};

// 'R': a relation with text-typed columns; `key` names the replica identity columns.
inline std::string relation_msg(std::uint32_t oid, std::string_view schema, std::string_view name,
                                char identity, const std::vector<std::string>& columns,
                                const std::vector<std::string>& key) {
  Msg m('R');
  m.u32(oid).str(schema).str(name).u8(static_cast<std::uint8_t>(identity));
  m.u16(static_cast<std::uint16_t>(columns.size()));
  for (const auto& c : columns) {
    bool is_key = false;
    for (const auto& k : key) is_key = is_key || k == c;
    m.u8(is_key ? 1 : 0).str(c).u32(25).u32(0xffffffffu);
  }
  return m.b;
}

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

}  // namespace pgbust::bench
