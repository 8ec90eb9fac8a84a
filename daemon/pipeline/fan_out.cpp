// Several Redis targets as one Applier: a batch per target, done when every target applied it.
#include "pgbust/pipeline/fan_out.hpp"

#include <memory>

#include "pgbust/rules/rules.hpp"

namespace pgbust {

FanOut::FanOut(std::vector<Member> members) : members_(std::move(members)) {}

Batch FanOut::prefixed(Batch batch, const std::string& key_prefix) {
  if (key_prefix.empty()) return batch;
  for (auto& k : batch.deletes) k.insert(0, key_prefix);
  for (auto& k : batch.bumps) k.insert(0, key_prefix);
  const std::string glob = rules::glob_escape(key_prefix);
  for (auto& p : batch.patterns) p.insert(0, glob);
  return batch;
}

void FanOut::apply(Batch batch, std::function<void()> done) {
  auto left = std::make_shared<std::size_t>(members_.size());
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  for (std::size_t i = 0; i < members_.size(); ++i) {
    const Member& m = members_[i];
    Batch copy = i + 1 == members_.size() ? std::move(batch) : batch;
    m.applier->apply(prefixed(std::move(copy), m.key_prefix), [left, shared_done] {
      if (--*left == 0 && *shared_done) (*shared_done)();
    });
  }
}

bool FanOut::idle() const {
  for (const Member& m : members_)
    if (m.applier->idle()) return true;
  return false;
}

}  // namespace pgbust
