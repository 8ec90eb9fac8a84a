// Fuzz target: framed pgoutput message sequences through one Decoder into the rule engine.
// Input: frames of [u16 big-endian length][message bytes]; a decode error ends the stream
// (as it does in the logical source) but must be a clean ProtocolError.
#include <cstdint>
#include <string_view>

#include "pgbust/pg/pgoutput.hpp"
#include "pgbust/rules/rules.hpp"

namespace {

struct NullSink : pgbust::rules::Sink {
  void fired(const pgbust::rules::Rule&) override {}
  void emit(const pgbust::rules::Rule&, pgbust::rules::Action, std::string_view) override {}
  void widened(const pgbust::rules::Rule&, pgbust::Unknown, std::string_view) override {}
};

std::shared_ptr<const pgbust::rules::RuleSet> rules() {
  static auto set = pgbust::rules::RuleSet::parse(R"(
version: 1
rules:
  - name: users
    table: public.users
    when: "new.name <> 'x' or old.bio is null"
    delete: ["user:${id}", "name:${name|lower}"]
    delete_pattern: "bio:${bio|md5:8}:*"
    bump: "rev:${id}"
  - name: any
    table: s.t
    changed: [a]
    delete: "t:${a}:${b}"
)",
                                                  "fuzz.yaml")
                        .rules;
  return set;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static pgbust::rules::Engine engine(rules(), {});
  std::string_view in(reinterpret_cast<const char*>(data), size);
  pgbust::pgoutput::Decoder decoder;
  NullSink sink;
  while (in.size() >= 2) {
    std::size_t len = (static_cast<unsigned char>(in[0]) << 8) | static_cast<unsigned char>(in[1]);
    in.remove_prefix(2);
    std::string_view msg = in.substr(0, len);
    in.remove_prefix(msg.size());
    try {
      const auto& d = decoder.decode(msg, 0x16B3748);
      for (const auto& ev : d.events) engine.evaluate(ev, sink);
    } catch (const pgbust::pgoutput::ProtocolError&) {
      return 0;
    }
  }
  return 0;
}
