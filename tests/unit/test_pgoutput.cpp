// pgoutput decoder: hand-built byte fixtures for every protocol-1 message, malformed input, fuzz.
#include <doctest/doctest.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "pgbust/pg/pgoutput.hpp"
#include "pgoutput_bytes.hpp"

using namespace pgbust;
using namespace pgbust::pgoutput;

namespace {

using test::Col;
using test::Msg;
using test::relation_msg;

// "v:<text>", "null", "unknown:toast", "unknown:notinimage" for one datum.
std::string show(const Datum& d) {
  switch (d.state) {
    case Datum::State::Null:
      return "null";
    case Datum::State::Value:
      return "v:" + std::string(d.text);
    case Datum::State::Unknown:
      return d.why == Unknown::UnchangedToast ? "unknown:toast"
             : d.why == Unknown::NotInImage   ? "unknown:notinimage"
                                              : "unknown:other";
  }
  return "?";
}

// "v:1|null|unknown:toast", or "<none>" for no image.
std::string show(const RowImage* row) {
  if (row == nullptr) return "<none>";
  std::string out;
  for (const auto& d : row->values) out += (out.empty() ? "" : "|") + show(d);
  return out;
}

const std::vector<Col> kUsers = {{true, "id", 23}, {false, "name"}, {false, "bio"}};

// A decoder plus the message bytes it decoded: decoded views point into those bytes.
struct Feed {
  Decoder d;
  std::deque<std::string> keep;
  const Decoded& decode(const Msg& m, std::uint64_t wal = 0) {
    keep.push_back(m.b);
    return d.decode(keep.back(), wal);
  }
  const Relation* relation(std::uint32_t oid) const { return d.relation(oid); }
  std::size_t relation_count() const { return d.relation_count(); }
};

std::unique_ptr<Feed> with_users() {
  auto f = std::make_unique<Feed>();
  f->decode(relation_msg(16384, "public", "users", 'd', kUsers));
  return f;
}

std::string error_of(Feed& f, std::string_view msg, std::uint64_t wal = 0x16B3748) {
  try {
    f.d.decode(msg, wal);
  } catch (const ProtocolError& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST_CASE("pgoutput: Begin, Commit, Origin, Type") {
  Feed d;
  auto& b = d.decode(Msg('B').u64(0x1000016B3748ULL).u64(700000000000000LL).u32(742));
  CHECK(b.kind == Kind::Begin);
  CHECK(b.begin.final_lsn == 0x1000016B3748ULL);
  CHECK(b.begin.commit_time == 700000000000000LL);
  CHECK(b.begin.xid == 742);

  auto& c = d.decode(Msg('C').u8(0).u64(0x16B3700).u64(0x16B3748).u64(12345));
  CHECK(c.kind == Kind::Commit);
  CHECK(c.commit.flags == 0);
  CHECK(c.commit.commit_lsn == 0x16B3700);
  CHECK(c.commit.end_lsn == 0x16B3748);
  CHECK(c.commit.commit_time == 12345);
  CHECK(c.events.empty());

  auto& o = d.decode(Msg('O').u64(0xABCDEF).str("pg_16400"));
  CHECK(o.kind == Kind::Origin);
  CHECK(o.origin.commit_lsn == 0xABCDEF);
  CHECK(o.origin.name == "pg_16400");

  auto& t = d.decode(Msg('Y').u32(16500).str("public").str("mood"));
  CHECK(t.kind == Kind::Type);
  CHECK(t.type.oid == 16500);
  CHECK(t.type.schema == "public");
  CHECK(t.type.name == "mood");
  CHECK(d.decode(Msg('Y').u32(25).str("").str("text")).type.schema == "pg_catalog");
}

TEST_CASE("pgoutput: Message, transactional or not, binary content") {
  Feed d;
  std::string content("a\0b", 3);
  auto& m = d.decode(Msg('M').u8(1).u64(0x500).str("pgbust").u32(3).raw(content));
  CHECK(m.kind == Kind::Message);
  CHECK(m.message.transactional);
  CHECK(m.message.lsn == 0x500);
  CHECK(m.message.prefix == "pgbust");
  CHECK(m.message.content == content);
  CHECK_FALSE(d.decode(Msg('M').u8(0).u64(1).str("p").u32(0)).message.transactional);
}

TEST_CASE("pgoutput: Relation fills TableInfo; a changed layout bumps the generation in place") {
  Feed d;
  auto& r = d.decode(relation_msg(16384, "public", "users", 'd', kUsers));
  REQUIRE(r.kind == Kind::Relation);
  REQUIRE(r.relation != nullptr);
  CHECK(r.relation_changed);
  const TableInfo* table = &r.relation->table;
  CHECK(table->qualified() == "public.users");
  CHECK(table->columns == std::vector<std::string>{"id", "name", "bio"});
  CHECK(table->key == std::vector<bool>{true, false, false});
  CHECK(r.relation->replica_identity == 'd');
  CHECK(r.relation->type_oids == std::vector<std::uint32_t>{23, 25, 25});
  CHECK(table->generation == 1);

  // The walsender resends the same layout after a reconnect or a cache invalidation.
  auto& same = d.decode(relation_msg(16384, "public", "users", 'd', kUsers));
  CHECK_FALSE(same.relation_changed);
  CHECK(&same.relation->table == table);
  CHECK(table->generation == 1);

  // ALTER TABLE users ADD COLUMN email; REPLICA IDENTITY FULL.
  std::vector<Col> altered = {{true, "id", 23}, {true, "name"}, {true, "bio"}, {true, "email"}};
  auto& alt = d.decode(relation_msg(16384, "public", "users", 'f', altered));
  const Relation* users = alt.relation;
  CHECK(alt.relation_changed);
  CHECK(&alt.relation->table == table);  // stable address for bind caches
  CHECK(table->generation == 2);
  CHECK(table->columns.size() == 4);
  CHECK(table->key == std::vector<bool>{true, true, true, true});
  CHECK(alt.relation->replica_identity == 'f');

  // Rows now decode with the new layout.
  auto& ins = d.decode(Msg('I').u32(16384).u8('N').tuple({"t:1", "t:ann", "n", "t:a@x"}));
  CHECK(show(ins.events[0].new_row) == "v:1|v:ann|null|v:a@x");

  // pg_catalog namespace is sent empty; another OID is another table.
  auto& other = d.decode(relation_msg(99, "", "pg_thing", 'n', {{false, "x"}}));
  CHECK(other.relation->table.schema == "pg_catalog");
  CHECK(d.relation_count() == 2);
  CHECK(d.relation(16384) == users);
  CHECK(d.relation(12345) == nullptr);
}

TEST_CASE("pgoutput: Insert with values, NULL, empty text and unchanged TOAST") {
  auto f = with_users();
  Feed& d = *f;
  auto& ins = d.decode(Msg('I').u32(16384).u8('N').tuple({"t:42", "t:", "n"}));
  REQUIRE(ins.kind == Kind::Insert);
  REQUIRE(ins.events.size() == 1);
  const ChangeEvent& e = ins.events[0];
  CHECK(e.source == SourceKind::Logical);
  CHECK(e.op == Op::Insert);
  CHECK(e.table->qualified() == "public.users");
  CHECK(e.old_row == nullptr);
  CHECK(show(e.new_row) == "v:42|v:|null");
  CHECK(e.new_row->at(7).state == Datum::State::Unknown);  // past the end

  auto& toast = d.decode(Msg('I').u32(16384).u8('N').tuple({"t:1", "t:x", "u"}));
  CHECK(show(toast.events[0].new_row) == "v:1|v:x|unknown:toast");
}

TEST_CASE("pgoutput: Update old images (none, K, O) and TOAST markers, table-driven") {
  struct Case {
    const char* name;
    char old_tag;  // 0: no old tuple
    std::vector<std::string> old_cols;
    std::vector<std::string> new_cols;
    std::string want_old;
    std::string want_new;
  };
  const std::vector<Case> cases = {
      {"DEFAULT identity, key unchanged: no old tuple",
       0,
       {},
       {"t:1", "t:bob", "u"},
       "<none>",
       "v:1|v:bob|unknown:toast"},
      {"DEFAULT identity, key changed: K tuple, non-key columns not in image",
       'K',
       {"t:1", "n", "n"},
       {"t:2", "t:bob", "t:hi"},
       "v:1|unknown:notinimage|unknown:notinimage",
       "v:2|v:bob|v:hi"},
      {"FULL identity: O tuple with NULL and unchanged TOAST",
       'O',
       {"t:1", "n", "u"},
       {"t:1", "t:bob", "u"},
       "v:1|null|unknown:toast",
       "v:1|v:bob|unknown:toast"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto f = with_users();
    Feed& d = *f;
    Msg m('U');
    m.u32(16384);
    if (c.old_tag != 0) m.u8(static_cast<std::uint8_t>(c.old_tag)).tuple(c.old_cols);
    m.u8('N').tuple(c.new_cols);
    auto& u = d.decode(m);
    REQUIRE(u.kind == Kind::Update);
    REQUIRE(u.events.size() == 1);
    CHECK(u.events[0].op == Op::Update);
    CHECK(show(u.events[0].old_row) == c.want_old);
    CHECK(show(u.events[0].new_row) == c.want_new);
  }
}

TEST_CASE("pgoutput: Delete with K and O tuples") {
  auto f = with_users();
  Feed& d = *f;
  auto& k = d.decode(Msg('D').u32(16384).u8('K').tuple({"t:7", "n", "n"}));
  REQUIRE(k.kind == Kind::Delete);
  CHECK(k.events[0].op == Op::Delete);
  CHECK(k.events[0].new_row == nullptr);
  CHECK(show(k.events[0].old_row) == "v:7|unknown:notinimage|unknown:notinimage");

  auto& o = d.decode(Msg('D').u32(16384).u8('O').tuple({"t:7", "t:eve", "n"}));
  CHECK(show(o.events[0].old_row) == "v:7|v:eve|null");
}

TEST_CASE("pgoutput: Truncate of several relations, with options") {
  auto f = with_users();
  Feed& d = *f;
  d.decode(relation_msg(16390, "app", "orders", 'f', {{true, "id"}}));
  auto& t = d.decode(Msg('T').u32(2).u8(3).u32(16384).u32(16390));
  REQUIRE(t.kind == Kind::Truncate);
  CHECK(t.truncate_cascade);
  CHECK(t.truncate_restart_identity);
  REQUIRE(t.events.size() == 2);
  CHECK(t.events[0].op == Op::Truncate);
  CHECK(t.events[0].table->qualified() == "public.users");
  CHECK(t.events[1].table->qualified() == "app.orders");
  CHECK(t.events[1].old_row == nullptr);
  CHECK(t.events[1].new_row == nullptr);

  auto& plain = d.decode(Msg('T').u32(1).u8(0).u32(16390));
  CHECK_FALSE(plain.truncate_cascade);
  CHECK(plain.events.size() == 1);
}

TEST_CASE("pgoutput: errors name the message type byte, the offset and the XLogData") {
  auto f = with_users();
  Feed& d = *f;
  CHECK(error_of(d, Msg('Z')) ==
        "pgoutput: unknown message type 'Z' (0x5a) at byte 0 of 1-byte XLogData at 0/16B3748");
  CHECK(error_of(d, Msg('\x01')).starts_with("pgoutput: unknown message type (0x01) at byte 0"));
  CHECK(error_of(d, std::string_view()).find("empty message") != std::string::npos);

  struct Case {
    const char* name;
    Msg msg;
    const char* want;
  };
  const std::vector<Case> cases = {
      {"unknown relation", Msg('I').u32(777).u8('N').tuple({"t:1"}),
       "Insert message 'I' (0x49): relation OID 777 was not described by a Relation message at "
       "byte 1"},
      {"insert tag", Msg('I').u32(16384).u8('O').tuple({"t:1", "n", "n"}),
       "expected new tuple 'N', got 'O' (0x4f) at byte 5"},
      {"update tag", Msg('U').u32(16384).u8('X'), "expected tuple tag 'K', 'O' or 'N'"},
      {"delete tag", Msg('D').u32(16384).u8('N').tuple({"t:1", "n", "n"}),
       "expected old tuple 'K' or 'O', got 'N'"},
      {"column count", Msg('I').u32(16384).u8('N').tuple({"t:1"}),
       "tuple has 1 columns but relation \"public.users\" (OID 16384) has 3 at byte 6"},
      {"column kind", Msg('I').u32(16384).u8('N').u16(3).u8('t').u32(1).raw("1").u8('x'),
       "unknown column format 'x' (0x78) for column \"name\" at byte 14"},
      {"binary column", Msg('I').u32(16384).u8('N').u16(3).u8('b').u32(0),
       "binary column format for column \"id\""},
      {"negative length", Msg('I').u32(16384).u8('N').u16(3).u8('t').u32(0xffffffffu),
       "negative length -1"},
      {"long text", Msg('I').u32(16384).u8('N').u16(3).u8('t').u32(100).raw("abc"),
       "truncated: need 100 bytes for column value, have 3 at byte 13 of 16-byte XLogData"},
      {"trailing bytes", Msg('B').u64(1).u64(2).u32(3).raw("xy"),
       "Begin message 'B' (0x42): 2 unexpected bytes after the end of the message at byte 21"},
      {"unterminated", Msg('O').u64(1).raw("abc"), "unterminated string for origin name"},
      {"truncate count", Msg('T').u32(1000000).u8(0).u32(16384),
       "truncated: 1000000 relation OIDs announced, room for 1"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    std::string err = error_of(d, c.msg);
    CHECK_MESSAGE(err.find(c.want) != std::string::npos, err);
    CHECK(err.find("XLogData at 0/16B3748") != std::string::npos);
  }
}

namespace {

// One valid message of every kind (after with_users()), for truncation and fuzzing.
std::vector<std::string> valid_fixtures() {
  std::vector<Msg> m = {
      Msg('B').u64(0x16B3748).u64(1).u32(2),
      Msg('C').u8(0).u64(1).u64(2).u64(3),
      Msg('O').u64(5).str("origin"),
      Msg('Y').u32(16500).str("public").str("mood"),
      relation_msg(16384, "public", "users", 'd', kUsers),
      relation_msg(16384, "public", "users", 'f',
                   {{true, "id", 23}, {true, "name"}, {true, "bio"}}),
      Msg('I').u32(16384).u8('N').tuple({"t:42", "n", "u"}),
      Msg('U').u32(16384).u8('N').tuple({"t:1", "t:b", "u"}),
      Msg('U').u32(16384).u8('K').tuple({"t:1", "n", "n"}).u8('N').tuple({"t:2", "t:b", "t:c"}),
      Msg('U').u32(16384).u8('O').tuple({"t:1", "t:a", "u"}).u8('N').tuple({"t:1", "t:b", "u"}),
      Msg('D').u32(16384).u8('K').tuple({"t:1", "n", "n"}),
      Msg('D').u32(16384).u8('O').tuple({"t:1", "t:a", "t:b"}),
      Msg('T').u32(1).u8(1).u32(16384),
      Msg('M').u8(1).u64(9).str("p").u32(2).raw("hi"),
  };
  std::vector<std::string> out;
  for (auto& x : m) out.push_back(x.b);
  return out;
}

}  // namespace

TEST_CASE("pgoutput: every truncation of every valid message is a clean error") {
  for (const auto& full : valid_fixtures()) {
    auto f = with_users();
    CHECK_NOTHROW(f->d.decode(full));
    for (std::size_t len = 0; len < full.size(); ++len) {
      CAPTURE(full);
      CAPTURE(len);
      auto fresh = with_users();
      CHECK_THROWS_AS(fresh->d.decode(std::string_view(full).substr(0, len), 1), ProtocolError);
    }
  }
}

TEST_CASE("pgoutput: mutation fuzz over valid fixtures never crashes or hangs") {
  std::mt19937_64 rng(20240601);
  auto fixtures = valid_fixtures();
  auto f = with_users();
  Feed& d = *f;
  std::size_t decoded = 0, rejected = 0;
  for (int iter = 0; iter < 100000; ++iter) {
    std::string m = fixtures[rng() % fixtures.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !m.empty(); ++e) {
      std::size_t at = rng() % m.size();
      switch (rng() % 4) {
        case 0:
          m[at] = static_cast<char>(rng());
          break;  // flip a byte
        case 1:
          m.erase(at, 1 + rng() % 3);
          break;  // drop bytes
        case 2:
          m.insert(at, 1, static_cast<char>(rng()));
          break;  // insert a byte
        case 3:
          m.resize(at);
          break;  // truncate
      }
    }
    try {
      const Decoded& out = d.d.decode(m, 0x10);
      ++decoded;
      // Whatever was accepted is internally consistent.
      for (const auto& ev : out.events) {
        REQUIRE(ev.table != nullptr);
        if (ev.new_row) REQUIRE(ev.new_row->values.size() == ev.table->columns.size());
        if (ev.old_row) REQUIRE(ev.old_row->values.size() == ev.table->columns.size());
      }
    } catch (const ProtocolError& e) {
      ++rejected;
      REQUIRE(std::string_view(e.what()).starts_with("pgoutput: "));
    }
  }
  CHECK(decoded > 0);
  CHECK(rejected > 0);
}

TEST_CASE("replication CopyData: XLogData, keepalive, status update, bad messages") {
  Msg w('w');
  w.u64(0x16B3748).u64(0x16B4000).u64(777).raw("B-payload");
  ServerMessage x = parse_server_message(w);
  CHECK(x.type == ServerMessage::Type::XLogData);
  CHECK(x.wal_start == 0x16B3748);
  CHECK(x.wal_end == 0x16B4000);
  CHECK(x.send_time == 777);
  CHECK(x.payload == "B-payload");

  Msg k('k');
  k.u64(0x1000000ABULL).u64(5).u8(1);
  ServerMessage ka = parse_server_message(k);
  CHECK(ka.type == ServerMessage::Type::Keepalive);
  CHECK(ka.wal_end == 0x1000000ABULL);
  CHECK(ka.reply_requested);
  CHECK_FALSE(parse_server_message(Msg('k').u64(1).u64(2).u8(0)).reply_requested);

  auto r = status_update(0x0102030405060708ULL, 0x1122, true);
  std::string want = Msg('r')
                         .u64(0x0102030405060708ULL)
                         .u64(0x0102030405060708ULL)
                         .u64(0x0102030405060708ULL)
                         .u64(0x1122)
                         .u8(1)
                         .b;
  CHECK(std::string(r.data(), r.size()) == want);

  CHECK_THROWS_WITH_AS(parse_server_message(Msg('k').u64(1)),
                       doctest::Contains("short CopyData message type 'k' (0x6b) (9 bytes)"),
                       ProtocolError);
  CHECK_THROWS_WITH_AS(parse_server_message(Msg('w').u64(1)), doctest::Contains("short"),
                       ProtocolError);
  CHECK_THROWS_WITH_AS(parse_server_message(Msg('q')),
                       doctest::Contains("unknown CopyData message type 'q'"), ProtocolError);
  CHECK_THROWS_AS(parse_server_message(std::string_view()), ProtocolError);

  // The PostgreSQL epoch is 2000-01-01 00:00:00 UTC.
  CHECK(kPgEpochOffsetUs == 946684800LL * 1000000);
  CHECK(pg_now_us() > 700'000'000'000'000LL);  // after 2022
}

TEST_CASE("pgoutput: a relation name from the server is quoted in errors (no forged log line)") {
  Feed f;
  f.decode(relation_msg(16390, "public", "evil\n2026-12-06 12:00:00.000 critical: forged", 'd',
                        {{true, "id", 23}}));
  std::string err = error_of(f, Msg('I').u32(16390).u8('N').tuple({"t:1", "t:2"}));
  CAPTURE(err);
  CHECK(err.find('\n') == std::string::npos);
  CHECK(err.find("relation \"public.evil\\n2026-12-06 12:00:00.000 critical: forged\" (OID "
                 "16390)") != std::string::npos);
}
