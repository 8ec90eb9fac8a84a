// `pgbust explain` (placeholder until implemented).
#include <iostream>

#include "pgbust/cli.hpp"

namespace pgbust::cli {

int explain(int, char**) {
  std::cerr << "pgbust explain: not implemented yet\n";
  return 2;
}

}  // namespace pgbust::cli
