// Builds the configured sources (logical, notify, poll) for the daemon.
#include "pgbust/cli/build_sources.hpp"

#include <algorithm>

#include "pgbust/sources/logical.hpp"
#include "pgbust/sources/notify.hpp"
#include "pgbust/sources/poll.hpp"

namespace pgbust::cli {

namespace {

std::string qualified(const std::string& t) {
  return t.find('.') == std::string::npos ? "public." + t : t;
}

}  // namespace

std::vector<std::string> logical_tables(const config::Config& cfg, const rules::RuleSet& rules) {
  std::vector<std::string> out;
  for (const auto& t : rules.tables()) {
    const std::string q = qualified(t);
    // The NOTIFY source serves its listed tables, or every rule table when none is listed.
    if (cfg.notify) {
      const auto& only = cfg.notify->tables;
      if (only.empty()) continue;
      if (std::any_of(only.begin(), only.end(),
                      [&](const std::string& n) { return qualified(n) == q; }))
        continue;
    }
    if (cfg.poll &&
        std::any_of(cfg.poll->tables.begin(), cfg.poll->tables.end(),
                    [&](const config::PollTable& p) { return p.schema + "." + p.table == q; }))
      continue;
    out.push_back(t);
  }
  return out;
}

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
    o.temporary_slot = cfg.logical->temporary_slot;
    o.never_confirm = cfg.logical->never_confirm;
    o.on_gap = cfg.logical->on_gap;
    o.status_interval = cfg.logical->status_interval;
    o.coverage_interval = cfg.logical->coverage_interval;
    o.tables = logical_tables(cfg, rules);
    o.tables_of = [cfg](const rules::RuleSet& r) { return logical_tables(cfg, r); };
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
