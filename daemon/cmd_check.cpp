// `pgbust check` (placeholder until implemented).
#include <iostream>

#include "pgbust/cli.hpp"

namespace pgbust::cli {

int check(int, char**) {
  std::cerr << "pgbust check: not implemented yet\n";
  return 2;
}

}  // namespace pgbust::cli
