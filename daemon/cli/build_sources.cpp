// Builds the configured sources (logical, notify, poll) for the daemon.
#include "pgbust/cli/build_sources.hpp"

#include "pgbust/sources/logical.hpp"
#include "pgbust/sources/notify.hpp"
#include "pgbust/sources/poll.hpp"

namespace pgbust::cli {

std::vector<std::unique_ptr<Source>> make_sources(const config::Config& cfg,
                                                  const rules::RuleSet& rules, ChangeSink& sink) {
  std::vector<std::unique_ptr<Source>> out;
  if (cfg.logical) {
    LogicalSourceOptions o;
    o.conninfo = cfg.conninfo;
    o.slot = cfg.logical->slot;
    o.publication = cfg.logical->publication;
    o.create_slot = cfg.logical->create_slot;
    o.state_dir = cfg.logical->state_dir;
    o.on_gap = cfg.logical->on_gap;
    o.status_interval = cfg.logical->status_interval;
    o.tables = rules.tables();
    out.push_back(std::make_unique<LogicalSource>(std::move(o), sink));
  }
  if (cfg.notify) {
    NotifyOptions o;
    o.conninfo = cfg.conninfo;
    o.notify = *cfg.notify;
    out.push_back(std::make_unique<NotifySource>(std::move(o), rules, sink));
  }
  if (cfg.poll) {
    PollOptions o;
    o.conninfo = cfg.conninfo;
    o.poll = *cfg.poll;
    out.push_back(std::make_unique<PollSource>(std::move(o), rules, sink));
  }
  return out;
}

}  // namespace pgbust::cli
