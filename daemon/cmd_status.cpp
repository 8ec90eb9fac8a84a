// `pgbust status` (placeholder until implemented).
#include <iostream>

#include "pgbust/cli.hpp"

namespace pgbust::cli {

int status(int, char**) {
  std::cerr << "pgbust status: not implemented yet\n";
  return 2;
}

}  // namespace pgbust::cli
