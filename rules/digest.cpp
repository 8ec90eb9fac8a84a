// MD5 (RFC 1321) and SHA-256 (FIPS 180-4), small and unoptimised: keys are short.
#include "digest.hpp"

#include <cstring>

namespace pgbust::rules::detail {
namespace {

constexpr std::uint32_t rotl(std::uint32_t x, int n) {
  return (x << n) | (x >> (32 - n));
}
constexpr std::uint32_t rotr(std::uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

// Feeds `data` plus Merkle–Damgård padding (0x80, zeros, 64-bit bit length) to `block`
// in 64-byte blocks. `big_endian_length` selects SHA-256's length encoding over MD5's.
template <typename Block>
void padded_blocks(std::string_view data, bool big_endian_length, Block&& block) {
  std::size_t full = data.size() / 64;
  for (std::size_t b = 0; b < full; ++b)
    block(reinterpret_cast<const std::uint8_t*>(data.data()) + b * 64);
  std::uint8_t tail[128] = {};
  std::size_t rest = data.size() - full * 64;
  std::memcpy(tail, data.data() + full * 64, rest);
  tail[rest] = 0x80;
  std::size_t tail_len = rest + 1 + 8 <= 64 ? 64 : 128;
  std::uint64_t bits = static_cast<std::uint64_t>(data.size()) * 8;
  for (int k = 0; k < 8; ++k) {
    auto byte = static_cast<std::uint8_t>(bits >> (8 * k));
    if (big_endian_length)
      tail[tail_len - 1 - k] = byte;
    else
      tail[tail_len - 8 + k] = byte;
  }
  block(tail);
  if (tail_len == 128) block(tail + 64);
}

constexpr std::uint32_t kMd5K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
constexpr int kMd5S[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                           5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                           4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                           6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};

constexpr std::uint32_t kShaK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

void append_hex(std::string& out, const std::uint8_t* digest, std::size_t size, std::size_t n) {
  static const char* hex = "0123456789abcdef";
  if (n > size * 2) n = size * 2;
  for (std::size_t k = 0; k < n; ++k) {
    std::uint8_t b = digest[k / 2];
    out.push_back(hex[(k % 2 == 0) ? (b >> 4) : (b & 15)]);
  }
}

}  // namespace

std::array<std::uint8_t, 16> md5(std::string_view data) {
  std::uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  padded_blocks(data, false, [&](const std::uint8_t* p) {
    std::uint32_t m[16];
    for (int k = 0; k < 16; ++k)
      m[k] = std::uint32_t(p[4 * k]) | std::uint32_t(p[4 * k + 1]) << 8 |
             std::uint32_t(p[4 * k + 2]) << 16 | std::uint32_t(p[4 * k + 3]) << 24;
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; ++i) {
      std::uint32_t f;
      int g;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      f += a + kMd5K[i] + m[g];
      a = d;
      d = c;
      c = b;
      b += rotl(f, kMd5S[i]);
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
  });
  std::array<std::uint8_t, 16> out{};
  for (int k = 0; k < 16; ++k) out[k] = static_cast<std::uint8_t>(h[k / 4] >> (8 * (k % 4)));
  return out;
}

std::array<std::uint8_t, 32> sha256(std::string_view data) {
  std::uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  padded_blocks(data, true, [&](const std::uint8_t* p) {
    std::uint32_t w[64];
    for (int k = 0; k < 16; ++k)
      w[k] = std::uint32_t(p[4 * k]) << 24 | std::uint32_t(p[4 * k + 1]) << 16 |
             std::uint32_t(p[4 * k + 2]) << 8 | std::uint32_t(p[4 * k + 3]);
    for (int k = 16; k < 64; ++k) {
      std::uint32_t s0 = rotr(w[k - 15], 7) ^ rotr(w[k - 15], 18) ^ (w[k - 15] >> 3);
      std::uint32_t s1 = rotr(w[k - 2], 17) ^ rotr(w[k - 2], 19) ^ (w[k - 2] >> 10);
      w[k] = w[k - 16] + s0 + w[k - 7] + s1;
    }
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int k = 0; k < 64; ++k) {
      std::uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      std::uint32_t ch = (e & f) ^ (~e & g);
      std::uint32_t t1 = hh + s1 + ch + kShaK[k] + w[k];
      std::uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      std::uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      std::uint32_t t2 = s0 + maj;
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  });
  std::array<std::uint8_t, 32> out{};
  for (int k = 0; k < 32; ++k) out[k] = static_cast<std::uint8_t>(h[k / 4] >> (24 - 8 * (k % 4)));
  return out;
}

void append_md5_hex(std::string& out, std::string_view data, std::size_t n) {
  auto d = md5(data);
  append_hex(out, d.data(), d.size(), n);
}

void append_sha256_hex(std::string& out, std::string_view data, std::size_t n) {
  auto d = sha256(data);
  append_hex(out, d.data(), d.size(), n);
}

}  // namespace pgbust::rules::detail
