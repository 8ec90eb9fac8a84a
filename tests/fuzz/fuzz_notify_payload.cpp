// Fuzz target: NOTIFY payloads as the notify source reads them (the signature envelope first,
// then the JSON), and their log prefixes.
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/sources/notify.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pgbust::notify;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  static const std::vector<SigningKey> keys{{"0a1b2c3d", std::string(32, '\x07')}, {"k1", "Jefe"}};
  Verified v = verify_payload(text, keys);
  // Only a payload whose MAC is the HMAC of its body under a key read is accepted.
  if (v.reject == Reject::None) {
    const SigningKey* key = nullptr;
    for (const auto& k : keys)
      if (k.id == v.key_id) key = &k;
    if (key == nullptr) __builtin_trap();
    std::string got(text);
    for (std::size_t i = 5 + key->id.size() + 1; i < 5 + key->id.size() + 1 + 64; ++i)
      got[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(got[i])));
    if (got != sign_payload(v.body, *key)) __builtin_trap();
  }
  if (!v.envelope_body.empty() || v.reject == Reject::Unsigned)
    (void)parse_payload(v.reject == Reject::Unsigned ? text : v.envelope_body);
  auto r = parse_payload(text);
  std::string prefix = payload_prefix(text, 64);
  if (prefix.find('\n') != std::string::npos) __builtin_trap();  // a log line stays one line
  (void)r;
  return 0;
}
