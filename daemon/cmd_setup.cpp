// `pgbust setup` (placeholder until implemented).
#include <iostream>

#include "pgbust/cli.hpp"

namespace pgbust::cli {

int setup(int, char**) {
  std::cerr << "pgbust setup: not implemented yet\n";
  return 2;
}

}  // namespace pgbust::cli
