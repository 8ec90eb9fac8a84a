// The command table (see commands.hpp).
#include "pgbust/cli/commands.hpp"

namespace pgbust::cli {

namespace {

constexpr Subcommand kCommands[] = {
    {"run", "run the daemon (the default command)", run},
    {"check", "validate the config and rules (--db: also against the live database)", check},
    {"explain", "print the Redis commands the rules would send for one row change", explain},
    {"setup", "print (or --apply) the SQL for the publication, slot and NOTIFY triggers", setup},
    {"status", "ask the running daemon how it is doing", status},
    {"test", "run table-driven tests of the rules (expected commands per row change)", test},
    {"flush", "invalidate everything some rules could have produced, once (recovery)", flush},
    {"help", "this overview, or a command's help (pgbust help COMMAND)", help},
};

}  // namespace

std::span<const Subcommand> commands() {
  return kCommands;
}

}  // namespace pgbust::cli
