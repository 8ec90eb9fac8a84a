// Builds the configured sources (logical, notify, poll) for the daemon.
#pragma once

#include <memory>
#include <vector>

#include "pgbust/core/config.hpp"
#include "pgbust/core/source.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust::cli {

std::vector<std::unique_ptr<Source>> make_sources(const config::Config& cfg,
                                                  const rules::RuleSet& rules, ChangeSink& sink);

}  // namespace pgbust::cli
