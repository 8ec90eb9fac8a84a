// NOTIFY payload parsing: what the generated triggers send, what hand-written ones may send,
// and every way a payload can be unusable (with the table kept when it can be read).
#include <doctest/doctest.h>

#include <cctype>

#include "pgbust/sources/notify.hpp"

using namespace pgbust;
using pgbust::notify::parse_payload;

namespace {

// "name=text", "name=NULL" or "name=?" for each column of an image.
std::vector<std::string> cells(const notify::Image& img) {
  std::vector<std::string> out;
  for (const auto& c : img.columns) {
    if (c.state == Datum::State::Null)
      out.push_back(c.name + "=NULL");
    else if (c.state == Datum::State::Unknown)
      out.push_back(c.name + "=?");
    else
      out.push_back(c.name + "=" + c.text);
  }
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("payloads the generated triggers send") {
  SUBCASE("update with old and new (jsonb text, keys sorted, spaces)") {
    auto r = parse_payload(
        R"({"op": "update", "new": {"id": "7", "group_id": "2", "note": null}, )"
        R"("old": {"id": "7", "group_id": "1", "note": "a\"b"}, "table": "orders", "schema": "shop"})");
    REQUIRE(r.payload);
    CHECK(r.error.empty());
    CHECK(r.payload->schema == "shop");
    CHECK(r.payload->table == "orders");
    CHECK(r.payload->op == Op::Update);
    CHECK_FALSE(r.payload->oversized);
    CHECK(cells(r.payload->new_row) == V{"id=7", "group_id=2", "note=NULL"});
    CHECK(cells(r.payload->old_row) == V{"id=7", "group_id=1", "note=a\"b"});
  }
  SUBCASE("insert: old is null") {
    auto r = parse_payload(
        R"({"schema":"public","table":"t","op":"insert","new":{"id":"1"},"old":null})");
    REQUIRE(r.payload);
    CHECK(r.payload->op == Op::Insert);
    CHECK(r.payload->new_row.present);
    CHECK_FALSE(r.payload->old_row.present);
  }
  SUBCASE("delete: new is null") {
    auto r = parse_payload(
        R"({"schema":"public","table":"t","op":"delete","new":null,"old":{"id":"1"}})");
    REQUIRE(r.payload);
    CHECK(r.payload->op == Op::Delete);
    CHECK_FALSE(r.payload->new_row.present);
    CHECK(cells(r.payload->old_row) == V{"id=1"});
  }
  SUBCASE("truncate carries no rows") {
    auto r = parse_payload(R"({"schema":"public","table":"t","op":"truncate"})");
    REQUIRE(r.payload);
    CHECK(r.payload->op == Op::Truncate);
  }
  SUBCASE("oversized with key columns only") {
    auto r = parse_payload(
        R"({"schema":"public","table":"t","op":"update","new":{"id":"1"},"old":{"id":"1"},"oversized":true})");
    REQUIRE(r.payload);
    CHECK(r.payload->oversized);
    CHECK(cells(r.payload->new_row) == V{"id=1"});
  }
  SUBCASE("oversized without rows is still usable (the table widens)") {
    auto r = parse_payload(R"({"schema":"public","table":"t","op":"delete","oversized":true})");
    REQUIRE(r.payload);
    CHECK(r.payload->oversized);
    CHECK_FALSE(r.payload->old_row.present);
  }
  SUBCASE("a non-ASCII value and an escaped one") {
    auto r = parse_payload(R"({"table":"t","op":"insert","new":{"name":"Zo\u00eb","k":"\u2603"}})");
    REQUIRE(r.payload);
    CHECK(cells(r.payload->new_row) == V{"name=Zo\xc3\xab", "k=\xe2\x98\x83"});
  }
}

TEST_CASE("payloads of hand-written triggers") {
  SUBCASE("schema defaults to public, op in any case") {
    auto r = parse_payload(R"({"table":"t","op":"INSERT","new":{"id":"1"}})");
    REQUIRE(r.payload);
    CHECK(r.payload->schema == "public");
    CHECK(r.payload->op == Op::Insert);
  }
  SUBCASE("to_jsonb() values: numbers keep their text, booleans read t/f") {
    auto r = parse_payload(
        R"({"table":"t","op":"insert","new":{"id":12345678901234567890,"price":1.50,"paid":true,"void":false}})");
    REQUIRE(r.payload);
    CHECK(cells(r.payload->new_row) ==
          V{"id=12345678901234567890", "price=1.50", "paid=t", "void=f"});
    CHECK(r.payload->warnings.empty());
  }
  SUBCASE("array and object values are unknown, with a warning") {
    auto r =
        parse_payload(R"({"table":"t","op":"insert","new":{"id":"1","tags":["a"],"doc":{"x":1}}})");
    REQUIRE(r.payload);
    CHECK(cells(r.payload->new_row) == V{"id=1", "tags=?", "doc=?"});
    REQUIRE(r.payload->warnings.size() == 2);
    CHECK(r.payload->warnings[0].find("\"tags\"") != std::string::npos);
    CHECK(r.payload->warnings[0].find("array") != std::string::npos);
  }
  SUBCASE("\"truncated\": true is the same flag as \"oversized\"") {
    auto r = parse_payload(R"({"table":"t","op":"update","truncated":true})");
    REQUIRE(r.payload);
    CHECK(r.payload->oversized);
  }
  SUBCASE("members pgbust does not know are ignored") {
    auto r = parse_payload(R"({"table":"t","op":"delete","old":{"id":"1"},"xid":"123","at":1})");
    CHECK(r.payload);
  }
}

TEST_CASE("malformed payloads: the error says what was expected, the table is kept if read") {
  struct Case {
    const char* payload;
    const char* error;  // a part of the message
    const char* table;  // "" when the table could not be read
  };
  const Case cases[] = {
      {"not json", "not JSON", ""},
      {"", "not JSON", ""},
      {R"({"table":"t","op":"insert","new":{"id":"1"})", "not JSON", ""},  // cut off
      {R"([1,2])", "expected a JSON object", ""},
      {R"("orders")", "expected a JSON object", ""},
      {R"({"op":"insert","new":{}})", "missing \"table\"", ""},
      {R"({"table":"","op":"insert"})", "\"table\" must be a non-empty string", ""},
      {R"({"table":7,"op":"insert"})", "\"table\" must be a non-empty string", ""},
      {R"({"schema":["x"],"table":"t","op":"insert"})", "\"schema\" must be a non-empty string",
       ""},
      {R"({"schema":"s","table":"t"})", "missing \"op\"", "s.t"},
      {R"({"table":"t","op":1})", "missing \"op\"", "public.t"},
      {R"({"table":"t","op":"upsert","new":{}})", "unknown op \"upsert\"", "public.t"},
      {R"({"table":"t","op":"insert","new":"id=1"})", "\"new\" must be an object", "public.t"},
      {R"({"table":"t","op":"delete","old":[1]})", "\"old\" must be an object", "public.t"},
      {R"({"table":"t","op":"insert"})", "needs \"new\"", "public.t"},
      {R"({"table":"t","op":"update","new":{"id":"1"}})", "needs \"old\"", "public.t"},
      {R"({"table":"t","op":"update","old":{"id":"1"}})", "needs \"new\"", "public.t"},
      {R"({"table":"t","op":"delete","new":{"id":"1"}})", "needs \"old\"", "public.t"},
      {R"({"table":"t","op":"delete","oversized":"yes"})", "\"oversized\" must be true or false",
       "public.t"},
      {R"({"table":"t","table":"u","op":"delete"})", "not JSON", ""},  // duplicate key
  };
  for (const auto& c : cases) {
    CAPTURE(c.payload);
    auto r = parse_payload(c.payload);
    CHECK_FALSE(r.payload);
    CHECK_MESSAGE(r.error.find(c.error) != std::string::npos, r.error);
    CHECK((r.table.empty() ? std::string() : r.schema + "." + r.table) == c.table);
  }
}

TEST_CASE("payload prefixes for log lines are bounded, quoted and cut on a character boundary") {
  CHECK(notify::payload_prefix("abc") == "\"abc\"");
  CHECK(notify::payload_prefix("a\nb\"c") == "\"a\\nb\\\"c\"");
  std::string long_text(500, 'x');
  CHECK(notify::payload_prefix(long_text) == "\"" + std::string(200, 'x') + "\"...");
  // "é" is two bytes: a cut after its first byte backs up to before it.
  std::string accented = std::string(199, 'a') + "\xc3\xa9" + "zzz";
  CHECK(notify::payload_prefix(accented) == "\"" + std::string(199, 'a') + "\"...");
  CHECK(notify::payload_prefix(std::string("\x01\xff", 2), 10) == "\"\\u0001\\u00ff\"");
}

TEST_CASE("payload warnings quote column names, so a newline cannot forge a log line") {
  auto r =
      parse_payload(R"({"table":"t","op":"insert","new":{"id":"1","x\ncritical: forged":[1]}})");
  REQUIRE(r.payload);
  REQUIRE(r.payload->warnings.size() == 1);
  const std::string& w = r.payload->warnings[0];
  CAPTURE(w);
  CHECK(w.find('\n') == std::string::npos);
  CHECK(w.find(R"("x\ncritical: forged")") != std::string::npos);
}

// --- signed payloads (issue 12: NOTIFY has no permission, payloads carry an HMAC) ---------

TEST_CASE("signing: HMAC-SHA256 as RFC 4231 test case 2 gives it, in the sig1 envelope") {
  notify::SigningKey key{"k1", "Jefe"};
  auto signed_text = notify::sign_payload("what do ya want for nothing?", key);
  CHECK(signed_text ==
        "sig1:k1:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843:"
        "what do ya want for nothing?");
  auto v = notify::verify_payload(signed_text, {key});
  CHECK(v.reject == notify::Reject::None);
  CHECK(v.body == "what do ya want for nothing?");
  CHECK(v.key_id == "k1");
}

TEST_CASE("signing: what verification rejects, and why") {
  notify::SigningKey current{"0a1b2c3d", std::string(32, '\x07')};
  notify::SigningKey previous{"99887766", std::string(32, '\x01')};
  std::string json = R"({"table": "orders", "op": "delete", "old": {"id": "1"}})";
  std::vector<notify::SigningKey> keys{current, previous};
  using notify::Reject;
  auto reject = [&](const std::string& text) { return notify::verify_payload(text, keys).reject; };

  SUBCASE("either key read verifies: the previous one during a rotation") {
    CHECK(reject(notify::sign_payload(json, current)) == Reject::None);
    CHECK(reject(notify::sign_payload(json, previous)) == Reject::None);
    std::string text = notify::sign_payload(json, previous);  // the views point into it
    auto v = notify::verify_payload(text, keys);
    CHECK(v.body == json);
  }
  SUBCASE("a plain JSON payload, as a hand-written NOTIFY sends") {
    CHECK(reject(json) == Reject::Unsigned);
    CHECK(reject("") == Reject::Unsigned);
    CHECK(reject("sig2:0a1b2c3d:" + std::string(64, '0') + ":" + json) == Reject::Unsigned);
  }
  SUBCASE("a body altered after signing, or a signature of another body") {
    auto good = notify::sign_payload(json, current);
    auto altered = good;
    altered.back() = ' ';
    CHECK(reject(altered) == Reject::BadSignature);
    auto other = notify::sign_payload(R"({"table": "x"})", current);
    CHECK(reject(other.substr(0, 5 + 9 + 65) + json) == Reject::BadSignature);
    // One flipped digit of the MAC.
    auto flipped = good;
    flipped[5 + 9] = flipped[5 + 9] == '0' ? '1' : '0';
    CHECK(reject(flipped) == Reject::BadSignature);
  }
  SUBCASE("signed with a key that is not read (forged with a guessed id, or a new key)") {
    notify::SigningKey attacker{"0a1b2c3d", std::string(32, '\x07') + "x"};
    CHECK(reject(notify::sign_payload(json, attacker)) == Reject::BadSignature);
    notify::SigningKey unknown{"ffffffff", std::string(32, '\x07')};
    std::string text = notify::sign_payload(json, unknown);
    auto v = notify::verify_payload(text, keys);
    CHECK(v.reject == Reject::UnknownKey);
    CHECK(v.key_id == "ffffffff");
    CHECK(v.body.empty());
    CHECK(v.envelope_body == json);  // for verify: false only
    CHECK(notify::verify_payload(notify::sign_payload(json, current), {}).reject ==
          Reject::UnknownKey);
  }
  SUBCASE("envelopes that are not sig1:<key id>:<64 hex digits>:<JSON>") {
    std::string mac(64, 'a');
    for (const std::string& bad : std::vector<std::string>{
             "sig1:", "sig1:0a1b2c3d", "sig1:0a1b2c3d:" + mac, "sig1::" + mac + ":" + json,
             "sig1:0a 1b:" + mac + ":" + json, "sig1:0a1b\n:" + mac + ":" + json,
             "sig1:0a1b2c3d:" + mac.substr(1) + ":" + json,
             "sig1:0a1b2c3d:" + std::string(63, 'a') + "g:" + json,
             "sig1:0a1b2c3d:" + mac + "a" + json,
             "sig1:" + std::string(65, 'k') + ":" + mac + ":"}) {
      CAPTURE(bad);
      CHECK(reject(bad) == Reject::Malformed);
    }
    // Uppercase hex is hex.
    auto good = notify::sign_payload(json, current);
    for (std::size_t i = 14; i < 14 + 64; ++i)
      good[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(good[i])));
    CHECK(reject(good) == Reject::None);
  }
  SUBCASE("labels for pgbust_notify_rejected_total") {
    CHECK(std::string(notify::reject_label(Reject::Unsigned)) == "unsigned");
    CHECK(std::string(notify::reject_label(Reject::Malformed)) == "malformed_signature");
    CHECK(std::string(notify::reject_label(Reject::UnknownKey)) == "unknown_key");
    CHECK(std::string(notify::reject_label(Reject::BadSignature)) == "bad_signature");
  }
}

TEST_CASE("signing: hex decoding of the key column") {
  CHECK(notify::from_hex("00ff7F") == std::string("\x00\xff\x7f", 3));
  CHECK(notify::from_hex("") == std::string());
  CHECK_FALSE(notify::from_hex("abc"));
  CHECK_FALSE(notify::from_hex("zz"));
  CHECK_FALSE(notify::from_hex("\\x00"));
}
