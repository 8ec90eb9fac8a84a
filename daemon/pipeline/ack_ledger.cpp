// The ordered-acknowledgement ledger: per-source commit-order records, confirmed up to the
// first one whose batch has not been applied.
#include "pgbust/pipeline/ack_ledger.hpp"

namespace pgbust {

void AckLedger::add(Source& source, Position position, std::int64_t commit_time_us, Group group) {
  auto& queue = queues_[&source];
  Record& r = queue.emplace_back();
  r.position = position;
  r.commit_time_us = commit_time_us;
  r.group = group;
  r.applied = group == kNothing;
  if (!r.applied) groups_[group].push_back(&r);
  ++records_;
  ++transactions_;
}

void AckLedger::applied(Group group) {
  auto it = groups_.find(group);
  if (it == groups_.end()) return;
  for (Record* r : it->second) r->applied = true;
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
