// Builds the configured sources (logical, notify, poll) for the daemon.
#pragma once

#include <memory>
#include <vector>

#include "pgbust/core/config.hpp"
#include "pgbust/core/source.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust::cli {

// The rule tables the logical source serves: all the rules name but those the NOTIFY source
// (sources.notify.tables, or all when it lists none) or the poll source serves. Only these
// count as uncovered when the publication lacks them.
std::vector<std::string> logical_tables(const config::Config& cfg, const rules::RuleSet& rules);

std::vector<std::unique_ptr<Source>> make_sources(const config::Config& cfg,
                                                  const rules::RuleSet& rules, ChangeSink& sink);

}  // namespace pgbust::cli
