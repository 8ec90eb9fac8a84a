// `pgbust run`: read the config, apply command-line overrides, set up logging, run the daemon.
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/daemon.hpp"
#include "pgbust/cli/exit_codes.hpp"
#include "pgbust/cli/options.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/ops/logging.hpp"
#include "pgbust/pg/conninfo.hpp"

namespace pgbust::cli {

namespace {

// Logging: to the journal (native protocol) when stderr is the journal (JOURNAL_STREAM), else
// stderr with "<N>" journald priorities when log.journal says so; text or JSON (log.format).
void setup_logging(const config::Config& cfg) {
  logging::Options o;
  o.level = cfg.log_level;
  o.format = cfg.log_format == "json" ? logging::Format::Json : logging::Format::Text;
  // Detected: the native protocol with structured fields, "<N>" lines when it fails.
  // log.journal: yes: "<N>" lines (a stderr that is a journal stream without JOURNAL_STREAM).
  bool detected = cfg.log_journal == "auto" && logging::journal_stream_is_stderr();
  o.journal_native = detected && logging::journal_socket_exists();
  o.journal = cfg.log_journal == "yes" || detected;
  logging::setup(o);
}

}  // namespace

int run(int argc, char** argv) {
  CommandLine cl("run", "pgbust run: keep Redis caches correct by watching PostgreSQL");
  std::string config_file, rules, conninfo, slot, publication, redis_url, key_prefix, log_level,
      status_interval, listen, trace;
  bool dry_run = false;
  // clang-format off
  cl.add()
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
    ("log-level", po::value(&log_level), "trace, debug, info, warn, error or off")
    ("dry-run", po::bool_switch(&dry_run), "shadow mode: evaluate the rules on the live stream and "
                                           "count what would be sent, never write to Redis; streams "
                                           "from a temporary slot, or from --slot without confirming")
    ("trace", po::value(&trace), "with --dry-run: append each command as a JSON line to FILE");
  // clang-format on
  if (auto exit = cl.parse(argc, argv)) return *exit;
  config::Config cfg;
  try {
    if (!config_file.empty()) {
      cfg = config::load(config_file);
    } else if (rules.empty()) {
      return cl.usage_error("give --config FILE (or at least --rules PATH)");
    } else {
      cfg.logical = config::Logical{};
    }
  } catch (const config::ConfigError& e) {
    std::cerr << logging::early_error(e.what());
    return kExitConfig;
  }
  if (!rules.empty()) cfg.rules = rules;
  if (cl.set("postgres")) cfg.conninfo = conninfo;
  if (auto problem = pg::conninfo_problem(cfg.conninfo)) {
    // No retry can fix it: a configuration error (exit 78), not a connection failure.
    std::cerr << logging::early_error(
        (cl.set("postgres") ? std::string("--postgres") : config_file + ": postgres.conninfo") +
        ": " + *problem);
    return kExitConfig;
  }
  if (cl.set("slot") && cfg.logical) cfg.logical->slot = slot;
  if (cl.set("publication") && cfg.logical) cfg.logical->publication = publication;
  if (cl.set("redis-url")) cfg.redis.url = redis_url;
  if (cl.set("key-prefix")) cfg.redis.key_prefix = key_prefix;
  if (cl.set("listen")) cfg.status.listen = listen;
  if (cl.set("log-level")) cfg.log_level = log_level;
  if (cl.set("status-interval")) {
    auto d = config::parse_duration(status_interval);
    if (!d) {
      return cl.usage_error("--status-interval '" + status_interval +
                            "' is not a duration like 500ms, 30s or 5m");
    }
    cfg.status.interval = *d;
  }
  if (cl.set("trace") && !dry_run) return cl.usage_error("--trace needs --dry-run");
  if (dry_run && cfg.poll)
    return cl.usage_error(
        "--dry-run does not run the poll source: it saves watermarks the live daemon reads "
        "(remove sources.poll from a copy of the config)");
  if (dry_run) {
    cfg.dry_run = true;
    cfg.dry_run_trace = trace;
    if (cfg.logical) {
      // Never touch the live daemon's slot position or slot record.
      cfg.logical->state_dir.clear();
      if (cl.set("slot")) {
        cfg.logical->never_confirm = true;
        cfg.logical->create_slot = false;
      } else {
        cfg.logical->slot = "pgbust_dry_run_" + std::to_string(::getpid());
        cfg.logical->temporary_slot = true;
        cfg.logical->create_slot = true;
      }
    }
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
