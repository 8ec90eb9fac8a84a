// `pgbust run`: read the config, apply command-line overrides, set up logging, run the daemon.
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <cstdlib>
#include <iostream>

#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/daemon.hpp"
#include "pgbust/cli/exit_codes.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/ops/logging.hpp"

namespace po = boost::program_options;

namespace pgbust::cli {

namespace {

// stderr logging: "<N>" journald priorities when stderr is the journal (JOURNAL_STREAM) or
// log.journal says so; text or JSON lines (log.format).
void setup_logging(const config::Config& cfg) {
  logging::Options o;
  o.level = cfg.log_level;
  o.format = cfg.log_format == "json" ? logging::Format::Json : logging::Format::Text;
  o.journal = cfg.log_journal == "yes" ||
              (cfg.log_journal == "auto" && logging::journal_stream_is_stderr());
  logging::setup(o);
}

}  // namespace

int run(int argc, char** argv) {
  po::options_description opts(
      "pgbust run: keep Redis caches correct by watching PostgreSQL\n\noptions");
  std::string config_file, rules, conninfo, slot, publication, redis_url, key_prefix, log_level,
      status_interval, listen;
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("config,c", po::value(&config_file), "config file (YAML), e.g. /etc/pgbust/pgbust.yaml")
    ("rules", po::value(&rules), "rules file or rules.d directory (overrides `rules`)")
    ("postgres", po::value(&conninfo), "libpq conninfo without a password (overrides "
                                       "postgres.conninfo; use PGPASSFILE or a service file for secrets)")
    ("slot", po::value(&slot), "replication slot (overrides sources.logical.slot)")
    ("publication", po::value(&publication), "publication (overrides sources.logical.publication)")
    ("redis-url", po::value(&redis_url), "redis://host:port/db or unix:///path (overrides redis.url)")
    ("key-prefix", po::value(&key_prefix), "prefix for every key, e.g. :1: (overrides redis.key_prefix)")
    ("status-interval", po::value(&status_interval), "status log interval, e.g. 30s")
    ("listen", po::value(&listen), "metrics address host:port, \"\" to disable (overrides status.listen)")
    ("log-level", po::value(&log_level), "trace, debug, info, warn, error or off");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "pgbust run: " << e.what() << "\n\n" << opts;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  config::Config cfg;
  try {
    if (!config_file.empty()) {
      cfg = config::load(config_file);
    } else if (rules.empty()) {
      std::cerr << "pgbust run: give --config FILE (or at least --rules PATH)\n";
      return 2;
    } else {
      cfg.logical = config::Logical{};
    }
  } catch (const config::ConfigError& e) {
    std::cerr << logging::early_error(e.what());
    return kExitConfig;
  }
  if (!rules.empty()) cfg.rules = rules;
  if (vm.count("postgres")) cfg.conninfo = conninfo;
  if (vm.count("slot") && cfg.logical) cfg.logical->slot = slot;
  if (vm.count("publication") && cfg.logical) cfg.logical->publication = publication;
  if (vm.count("redis-url")) cfg.redis.url = redis_url;
  if (vm.count("key-prefix")) cfg.redis.key_prefix = key_prefix;
  if (vm.count("listen")) cfg.status.listen = listen;
  if (vm.count("log-level")) cfg.log_level = log_level;
  if (vm.count("status-interval")) {
    auto d = config::parse_duration(status_interval);
    if (!d) {
      std::cerr << "pgbust run: --status-interval '" << status_interval
                << "' is not a duration like 500ms, 30s or 5m\n";
      return 2;
    }
    cfg.status.interval = *d;
  }
  setup_logging(cfg);
  try {
    Daemon daemon(std::move(cfg));
    return daemon.run();
  } catch (const config::ConfigError& e) {
    spdlog::critical("{}", e.what());
    return kExitConfig;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}

}  // namespace pgbust::cli
