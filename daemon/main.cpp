// pgbust's entry point: picks the subcommand and hands over. All logic lives in libraries.
#include <cstring>
#include <iostream>
#include <string_view>

#include "pgbust/cli/commands.hpp"
#include "pgbust/core/version.hpp"

int main(int argc, char** argv) {
  using pgbust::cli::run;
  if (argc < 2 || argv[1][0] == '-') {
    if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0))
      return pgbust::cli::help(1, argv);
    if (argc >= 2 && std::strcmp(argv[1], "--version") == 0) {
      std::cout << "pgbust " << pgbust::version() << " (" << pgbust::revision() << ")\n";
      return 0;
    }
    return run(argc, argv);
  }
  std::string_view cmd = argv[1];
  // Each command sees its own name as argv[0].
  for (const auto& c : pgbust::cli::commands())
    if (cmd == c.name) return c.main(argc - 1, argv + 1);
  std::cerr << "pgbust: unknown command '" << cmd << "' (see pgbust --help)\n";
  return 2;
}
