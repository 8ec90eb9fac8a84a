// Fuzz target: Redis URLs. Properties: masking splits the userinfo exactly where the parser
// does (the masked URL parses to the same endpoint, password aside), and no error message
// shows the password text.
#include <cstdint>
#include <string>
#include <string_view>

#include "pgbust/core/error.hpp"
#include "pgbust/redis/redis.hpp"

using namespace pgbust::redis;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string url(reinterpret_cast<const char*>(data), size);
  UrlParts parts = split_url(url);
  std::string masked = mask_url(url);
  try {
    Endpoint ep = parse_url(url);
    if (!ep.password.empty()) {
      Endpoint again = parse_url(masked);
      if (again.host != ep.host || again.port != ep.port || again.db != ep.db ||
          again.path != ep.path || again.user != ep.user || again.password != "********")
        __builtin_trap();
    }
  } catch (const pgbust::Error& e) {
    if (!parts.userinfo) return 0;
    std::string_view info = *parts.userinfo;
    auto colon = info.find(':');
    std::string_view secret = colon == std::string_view::npos ? info : info.substr(colon + 1);
    std::string shown = std::string(parts.prefix) +
                        std::string(info.substr(0, colon == std::string_view::npos ? 0 : colon)) +
                        std::string(parts.rest);
    // A secret long enough to mean something, that is not also written elsewhere in the URL,
    // nor the mask itself (a password of asterisks reads like the "********" shown for it),
    // shown more often than in the error for the same URL with the secret's letters and
    // digits rotated (same shape, same error, but a different secret): what that error shows
    // of the original secret is fixed text (the fuzzer learns to spell "rediss://" or
    // "uery ('?...') in a redis:// URL" as a password).
    auto count = [&](const std::string& text) {
      std::size_t n = 0;
      for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 1))
        ++n;
      return n;
    };
    std::size_t offset = static_cast<std::size_t>(secret.data() - url.data());
    if (secret.data() < url.data() || offset + secret.size() > url.size()) return 0;
    std::string rotated = url;
    for (std::size_t i = offset; i < offset + secret.size(); ++i) {
      char& c = rotated[i];
      if (c >= 'a' && c <= 'z')
        c = c == 'z' ? 'a' : static_cast<char>(c + 1);
      else if (c >= 'A' && c <= 'Z')
        c = c == 'Z' ? 'A' : static_cast<char>(c + 1);
      else if (c >= '0' && c <= '9')
        c = c == '9' ? '0' : static_cast<char>(c + 1);
    }
    std::string rotated_error;
    try {
      (void)parse_url(rotated);
    } catch (const pgbust::Error& m) {
      rotated_error = m.what();
    }
    if (secret.size() >= 6 && shown.find(secret) == std::string::npos &&
        secret.find_first_not_of('*') != std::string_view::npos &&
        count(e.what()) > count(rotated_error))
      __builtin_trap();
  }
  return 0;
}
