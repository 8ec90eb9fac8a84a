// A set of byte strings (Redis keys and patterns) stored back to back in one buffer, for the
// pipeline's per-transaction and per-batch dedup: adding a key costs no heap allocation of
// its own, and the keys come back in insertion order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgbust {

class KeySet {
 public:
  // Adds `key` unless present; true when it was added.
  bool insert(std::string_view key) { return insert(key, hash(key), 0); }
  // Adds `key` with `tag` (who asked for it: the pipeline's origin index, for the dry run's
  // per-rule counts) unless present; a key already present keeps its first tag.
  bool insert(std::string_view key, std::uint32_t tag) { return insert(key, hash(key), tag); }
  bool contains(std::string_view key) const;
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // The i-th key added (i < size()); valid until the next insert or clear.
  std::string_view operator[](std::size_t i) const {
    const Entry& e = entries_[i];
    return std::string_view(bytes_.data() + e.offset, e.size);
  }
  // The tag the i-th key was added with (0 when none was given).
  std::uint32_t tag(std::size_t i) const { return i < tags_.size() ? tags_[i] : 0; }
  // Adds every key of `other` with its tag (its stored hashes are reused).
  void merge(const KeySet& other);
  // Removes every key. Keeps the memory for reuse unless a large transaction grew it, so one
  // huge transaction does not pin memory for the daemon's lifetime.
  void clear();
  // Heap bytes held (for tests of the bound above).
  std::size_t capacity_bytes() const;

 private:
  struct Entry {
    std::size_t offset;
    std::size_t size;
    std::size_t hash;
  };
  static std::size_t hash(std::string_view key);
  bool insert(std::string_view key, std::size_t h, std::uint32_t tag);
  // The slot holding `key`, or the empty slot where it would go.
  std::size_t find(std::string_view key, std::size_t h) const;
  void grow();

  std::string bytes_;                 // every key, back to back
  std::vector<Entry> entries_;        // insertion order
  std::vector<std::uint32_t> slots_;  // open addressing: entry index + 1, 0 = empty
  std::vector<std::uint32_t> tags_;   // by entry; empty until a key comes with a tag
};

}  // namespace pgbust
