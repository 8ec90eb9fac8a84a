// The subcommands of the pgbust binary. main() only picks one; each parses its own flags
// with Boost.Program_options and returns the process exit code.
#pragma once

namespace pgbust::cli {

int run(int argc, char** argv);      // the daemon (default)
int check(int argc, char** argv);    // validate config and rules (and the database with --db)
int explain(int argc, char** argv);  // the Redis commands one change would cause
int setup(int argc, char** argv);    // SQL for publication, slot, NOTIFY triggers
int status(int argc, char** argv);   // ask the running daemon how it is doing
int test(int argc, char** argv);
int flush(
    int argc,
    char** argv);  // one-shot widening of rules, for recovery     // table-driven rule tests (YAML)

}  // namespace pgbust::cli
