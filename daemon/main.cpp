// pgbust's entry point: picks the subcommand and hands over. All logic lives in libraries.
#include <cstring>
#include <iostream>
#include <string_view>

#include "pgbust/cli/commands.hpp"
#include "pgbust/core/version.hpp"

namespace {

constexpr const char* kUsage =
    "usage: pgbust [COMMAND] [OPTIONS]\n"
    "\n"
    "pgbust keeps Redis caches correct by watching PostgreSQL commits.\n"
    "\n"
    "commands:\n"
    "  run       run the daemon (default)\n"
    "  check     validate the config and rules (--db: also against the live database)\n"
    "  explain   print the Redis commands the rules would send for one row change\n"
    "  setup     print (or --apply) the SQL for the publication, slot and NOTIFY triggers\n"
    "  status    ask the running daemon how it is doing\n"
    "  test      run table-driven tests of the rules (expected commands per row change)\n"
    "  flush     invalidate everything some rules could have produced, once (recovery)\n"
    "\n"
    "`pgbust COMMAND --help` lists each command's options.\n";

}  // namespace

int main(int argc, char** argv) {
  using pgbust::cli::run;
  if (argc < 2 || argv[1][0] == '-') {
    if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
      std::cout << kUsage;
      return 0;
    }
    if (argc >= 2 && std::strcmp(argv[1], "--version") == 0) {
      std::cout << "pgbust " << pgbust::version() << " (" << pgbust::revision() << ")\n";
      return 0;
    }
    return run(argc, argv);
  }
  std::string_view cmd = argv[1];
  // Each command sees its own name as argv[0].
  if (cmd == "run") return run(argc - 1, argv + 1);
  if (cmd == "check") return pgbust::cli::check(argc - 1, argv + 1);
  if (cmd == "explain") return pgbust::cli::explain(argc - 1, argv + 1);
  if (cmd == "setup") return pgbust::cli::setup(argc - 1, argv + 1);
  if (cmd == "status") return pgbust::cli::status(argc - 1, argv + 1);
  if (cmd == "test") return pgbust::cli::test(argc - 1, argv + 1);
  if (cmd == "flush") return pgbust::cli::flush(argc - 1, argv + 1);
  if (cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "pgbust: unknown command '" << cmd << "' (see pgbust --help)\n";
  return 2;
}
