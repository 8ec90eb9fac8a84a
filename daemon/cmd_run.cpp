// `pgbust run` (placeholder until implemented).
#include <iostream>

#include "pgbust/cli.hpp"

namespace pgbust::cli {

int run(int, char**) {
  std::cerr << "pgbust run: not implemented yet\n";
  return 2;
}

}  // namespace pgbust::cli
