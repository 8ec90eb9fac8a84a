// The process exit codes every pgbust command shares, so the systemd unit and scripts can
// tell a broken configuration (restarting cannot help) from a runtime failure (it may).
#pragma once

namespace pgbust::cli {

inline constexpr int kExitOk = 0;
// A runtime failure: a lost server that gave up, a drain that timed out. The unit restarts.
inline constexpr int kExitFailure = 1;
// Bad command-line usage.
inline constexpr int kExitUsage = 2;
// EX_CONFIG (sysexits.h): the config file or the rules are invalid. The unit's
// RestartPreventExitStatus=78 stops systemd from restarting into the same error.
inline constexpr int kExitConfig = 78;

}  // namespace pgbust::cli
