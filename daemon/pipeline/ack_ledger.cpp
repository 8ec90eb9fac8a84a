// The ordered-acknowledgement ledger: per-source commit-order records, confirmed up to the
// first one whose batch has not been applied; runs confirmable together share a record.
#include "pgbust/pipeline/ack_ledger.hpp"

namespace pgbust {

void AckLedger::absorb(Record& into, const Record& later) {
  into.position = later.position;
  into.commit_time_us = later.commit_time_us;
  if (into.first_commit_us == 0) into.first_commit_us = later.first_commit_us;
  into.transactions += later.transactions;
}

void AckLedger::add(Source& source, Position position, std::int64_t commit_time_us, Group group) {
  Queue& queue = queues_[&source];
  ++transactions_;
  Record r;
  r.position = position;
  r.commit_time_us = r.first_commit_us = commit_time_us;
  r.group = group;
  r.applied = group == kNothing;
  if (!queue.empty()) {
    Record& back = queue.back();
    // Nothing to apply, or the same batch as the record before: confirmable exactly when it is.
    if (r.applied || (group == back.group && !back.applied)) {
      absorb(back, r);
      return;
    }
  }
  queue.push_back(r);
  ++records_;
  if (!r.applied) groups_[group].emplace_back(&queue, std::prev(queue.end()));
}

void AckLedger::applied(Group group) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  for (auto [queue, rec] : it->second) {
    rec->applied = true;
    // Now it only waits for the record before it: join that one.
    if (rec != queue->begin()) {
      absorb(*std::prev(rec), *rec);
      queue->erase(rec);
      --records_;
    }
  }
  groups_.erase(it);
}

void AckLedger::settle(const std::function<void(const Record&)>& each) {
  for (auto& [source, queue] : queues_) {
    if (queue.empty() || !queue.front().applied) continue;
    Position last = 0;
    while (!queue.empty() && queue.front().applied) {
      const Record& r = queue.front();
      if (each) each(r);
      last = r.position;
      transactions_ -= r.transactions;
      --records_;
      queue.pop_front();
    }
    source->confirm(last);
  }
}

}  // namespace pgbust
