// MD5 and SHA-256 for the `md5:N` / `sha256:N` template filters (keys as apps compute them,
// e.g. Python's hashlib.md5(v.encode()).hexdigest()[:N]). Not for security.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgbust::rules::detail {

std::array<std::uint8_t, 16> md5(std::string_view data);
std::array<std::uint8_t, 32> sha256(std::string_view data);

// Appends the first `n` lowercase hex digits of the digest (n clamped to the digest length).
void append_md5_hex(std::string& out, std::string_view data, std::size_t n);
void append_sha256_hex(std::string& out, std::string_view data, std::size_t n);

}  // namespace pgbust::rules::detail
