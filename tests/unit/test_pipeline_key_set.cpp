// KeySet: the pipeline's allocation-free key dedup (insertion order, merge, clear and reuse).
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "pgbust/pipeline/key_set.hpp"

using pgbust::KeySet;

namespace {

std::vector<std::string> keys_of(const KeySet& s) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size(); ++i) out.emplace_back(s[i]);
  return out;
}

}  // namespace

TEST_CASE("KeySet keeps each key once, in insertion order") {
  struct Case {
    std::vector<std::string> add;
    std::vector<std::string> expect;
  };
  const std::string nul("a\0b", 3), nul2("a\0c", 3);
  const Case cases[] = {
      {{}, {}},
      {{"task:1"}, {"task:1"}},
      {{"task:1", "task:1"}, {"task:1"}},
      {{"b", "a", "b", "c", "a"}, {"b", "a", "c"}},
      {{"", "", "x"}, {"", "x"}},       // the empty key is a key
      {{nul, nul2, nul}, {nul, nul2}},  // binary-safe: NUL bytes are compared
      {{"task:1", "task:10", "task:1"}, {"task:1", "task:10"}},
  };
  for (const auto& c : cases) {
    KeySet s;
    for (const auto& k : c.add) s.insert(k);
    CHECK(keys_of(s) == c.expect);
    for (const auto& k : c.expect) CHECK(s.contains(k));
    CHECK_FALSE(s.contains("absent"));
  }
}

TEST_CASE("KeySet agrees with std::unordered_set over random keys, through clears") {
  std::mt19937 rng(42);
  KeySet s;
  for (int round = 0; round < 6; ++round) {
    // Sizes vary so clear() runs every path: small after big, big after small.
    const int n = round % 2 == 0 ? 50000 : 37;
    std::unordered_set<std::string> ref;
    std::vector<std::string> order;
    for (int i = 0; i < n; ++i) {
      std::string k = "k:" + std::to_string(rng() % static_cast<unsigned>(n));
      bool added = s.insert(k);
      bool ref_added = ref.insert(k).second;
      REQUIRE(added == ref_added);
      if (added) order.push_back(k);
    }
    CHECK(s.size() == ref.size());
    CHECK(keys_of(s) == order);
    for (const auto& k : ref) CHECK(s.contains(k));
    s.clear();
    CHECK(s.empty());
    CHECK_FALSE(s.contains(order.front()));
  }
}

TEST_CASE("KeySet merge adds only the keys it lacks, after its own") {
  KeySet a, b;
  for (const char* k : {"x", "y"}) a.insert(k);
  for (const char* k : {"y", "z", "x", "w"}) b.insert(k);
  a.merge(b);
  CHECK(keys_of(a) == std::vector<std::string>{"x", "y", "z", "w"});
  CHECK(b.size() == 4);
}

TEST_CASE("KeySet gives back the memory of a large set when cleared") {
  KeySet s;
  for (int i = 0; i < 200000; ++i) s.insert("task:" + std::to_string(i));
  const std::size_t big = s.capacity_bytes();
  s.clear();
  CHECK(s.capacity_bytes() < big / 10);
  // Still usable, and a small set keeps its memory between clears (no churn).
  for (int i = 0; i < 100; ++i) s.insert("t:" + std::to_string(i));
  const std::size_t small = s.capacity_bytes();
  s.clear();
  CHECK(s.capacity_bytes() == small);
  CHECK(s.insert("t:1"));
}
