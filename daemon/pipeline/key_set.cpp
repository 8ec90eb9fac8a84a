// KeySet: keys back to back in one buffer, found through an open-addressing table of indexes.
#include "pgbust/pipeline/key_set.hpp"

#include <algorithm>
#include <functional>

namespace pgbust {

namespace {

constexpr std::size_t kMinSlots = 16;
// clear() keeps at most this much, so a 100k-key transaction gives its memory back.
constexpr std::size_t kKeepSlots = 1 << 14;
constexpr std::size_t kKeepBytes = 1 << 18;

}  // namespace

std::size_t KeySet::hash(std::string_view key) {
  return std::hash<std::string_view>{}(key);
}

std::size_t KeySet::find(std::string_view key, std::size_t h) const {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = h & mask;; i = (i + 1) & mask) {
    std::uint32_t s = slots_[i];
    if (s == 0) return i;
    const Entry& e = entries_[s - 1];
    if (e.hash == h && e.size == key.size() &&
        std::char_traits<char>::compare(bytes_.data() + e.offset, key.data(), key.size()) == 0)
      return i;
  }
}

bool KeySet::contains(std::string_view key) const {
  if (slots_.empty()) return false;
  return slots_[find(key, hash(key))] != 0;
}

void KeySet::grow() {
  std::size_t n = std::max(kMinSlots, slots_.size() * 2);
  slots_.assign(n, 0);
  const std::size_t mask = n - 1;
  for (std::size_t idx = 0; idx < entries_.size(); ++idx) {
    std::size_t i = entries_[idx].hash & mask;
    while (slots_[i] != 0) i = (i + 1) & mask;
    slots_[i] = static_cast<std::uint32_t>(idx + 1);
  }
}

bool KeySet::insert(std::string_view key, std::size_t h, std::uint32_t tag) {
  // At most half full: probes stay short.
  if ((entries_.size() + 1) * 2 > slots_.size()) grow();
  std::size_t i = find(key, h);
  if (slots_[i] != 0) return false;
  entries_.push_back({bytes_.size(), key.size(), h});
  bytes_.append(key);
  slots_[i] = static_cast<std::uint32_t>(entries_.size());
  if (tag != 0 || !tags_.empty()) {  // untagged sets (the daemon's usual case) pay nothing
    tags_.resize(entries_.size() - 1, 0);
    tags_.push_back(tag);
  }
  return true;
}

void KeySet::merge(const KeySet& other) {
  for (std::size_t idx = 0; idx < other.entries_.size(); ++idx) {
    const Entry& e = other.entries_[idx];
    insert(std::string_view(other.bytes_.data() + e.offset, e.size), e.hash, other.tag(idx));
  }
}

void KeySet::clear() {
  if (slots_.size() > kKeepSlots) {
    std::vector<std::uint32_t>().swap(slots_);
    std::vector<Entry>().swap(entries_);
    std::vector<std::uint32_t>().swap(tags_);
  } else if (entries_.size() * 8 < slots_.size()) {
    // Few keys in a roomy table (a small transaction after a bigger one): zero their slots
    // only. Each entry's slot is on its probe path; holes left by earlier zeroing do not
    // matter, since the search is for the exact index, not for an empty slot.
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t idx = 0; idx < entries_.size(); ++idx) {
      std::size_t i = entries_[idx].hash & mask;
      while (slots_[i] != idx + 1) i = (i + 1) & mask;
      slots_[i] = 0;
    }
  } else {
    std::fill(slots_.begin(), slots_.end(), 0);
  }
  entries_.clear();
  tags_.clear();
  if (bytes_.capacity() > kKeepBytes)
    std::string().swap(bytes_);
  else
    bytes_.clear();
}

std::size_t KeySet::capacity_bytes() const {
  return bytes_.capacity() + entries_.capacity() * sizeof(Entry) +
         (slots_.capacity() + tags_.capacity()) * sizeof(std::uint32_t);
}

}  // namespace pgbust
