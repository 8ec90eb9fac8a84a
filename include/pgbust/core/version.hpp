// What was built: the project version (CMakeLists.txt) and the source revision (git describe
// at configure time, or "unknown"), for `pgbust --version` and pgbust_build_info.
#pragma once

#include <string_view>

namespace pgbust {

std::string_view version() noexcept;   // e.g. "0.1.0"
std::string_view revision() noexcept;  // e.g. "7354c97a1b2c-dirty", or "unknown"

}  // namespace pgbust
