// The subcommands of the pgbust binary. main() only picks one; each parses its own flags
// with Boost.Program_options and returns the process exit code.
#pragma once

#include <span>

namespace pgbust::cli {

int run(int argc, char** argv);      // the daemon (default)
int check(int argc, char** argv);    // validate config and rules (and the database with --db)
int explain(int argc, char** argv);  // the Redis commands one change would cause
int setup(int argc, char** argv);    // SQL for publication, slot, NOTIFY triggers
int status(int argc, char** argv);   // ask the running daemon how it is doing
int test(int argc, char** argv);     // table-driven rule tests (YAML)
int flush(int argc, char** argv);    // one-shot widening of rules, for recovery
int help(int argc, char** argv);     // the overview, or man pages, README and completion

// The command table: main() dispatches through it; `pgbust --help`, the man page, the README
// reference and the bash completion list it. A new command is one line here (commands.cpp).
// A command's function must declare its options with CommandLine and call parse() before
// doing anything else (Describing runs it with no arguments to read them).
struct Subcommand {
  const char* name;
  const char* summary;  // one line, lower case, no final period
  int (*main)(int argc, char** argv);
};
std::span<const Subcommand> commands();

}  // namespace pgbust::cli
