// The ordered-acknowledgement ledger (promise 2): each source's committed transactions in
// commit order, each waiting for the batch that applies its invalidations; a source's
// position is confirmed only up to its first transaction whose work is not yet applied.
//
// Bounded (promise 5): a transaction that becomes confirmable exactly when the record before
// it does shares that record, which then holds the later position. That is so for one with
// nothing to apply, one whose batch is the record's own, and any record whose batch is
// applied (it only waits for its predecessor). So a source has at most one record more than
// it has batches unapplied, however many transactions arrive while Redis is down.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pgbust/core/source.hpp"

namespace pgbust {

class AckLedger {
 public:
  // The records a batch applies. kNothing: a transaction with nothing to apply, applied at once.
  using Group = std::uint64_t;
  static constexpr Group kNothing = 0;

  // One or more consecutive committed transactions of one source.
  struct Record {
    Position position = 0;             // of the last transaction it holds
    std::int64_t commit_time_us = 0;   // of that transaction (0: unknown)
    std::int64_t first_commit_us = 0;  // of the first (the one waiting longest; 0: unknown)
    std::uint64_t transactions = 1;    // how many it holds
    Group group = kNothing;
    bool applied = false;
  };

  // A fresh group for the next batch (never kNothing).
  Group open_group() { return ++last_group_; }

  // Records a committed transaction of `source` whose invalidations `group` applies (a group
  // not yet marked applied).
  void add(Source& source, Position position, std::int64_t commit_time_us, Group group);

  // Every record of `group` is applied (its batch, second deletes included, succeeded).
  void applied(Group group);

  // Pops each source's leading applied records, calls `each` for every one in commit order,
  // then confirms the source up to the last of them.
  void settle(const std::function<void(const Record&)>& each);

  std::size_t transactions() const { return transactions_; }  // committed, not yet confirmed
  std::size_t records() const { return records_; }            // records holding them
  bool empty() const { return records_ == 0; }

 private:
  using Queue = std::list<Record>;  // per source, commit order; erasing keeps the others
  // `later` joins `into`, the record just before it in the same queue.
  static void absorb(Record& into, const Record& later);

  std::unordered_map<Source*, Queue> queues_;
  // The unapplied records of each group, in commit order per source.
  std::unordered_map<Group, std::vector<std::pair<Queue*, Queue::iterator>>> groups_;
  Group last_group_ = kNothing;
  std::size_t transactions_ = 0, records_ = 0;
};

}  // namespace pgbust
