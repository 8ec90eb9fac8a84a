// The command line of every command (run, check, explain, setup, status, test, flush), parsed
// one way: the same wording for a bad flag, a stray argument and a usage error, the same help
// hint, --help on stdout with exit 0, usage errors on stderr with exit 2.
#pragma once

#include <boost/program_options.hpp>
#include <optional>
#include <string>
#include <vector>

namespace pgbust::cli {

namespace po = boost::program_options;

// A command's options as declared, for `pgbust help --format ...` (man page, README,
// completion): the same declarations --help prints, so the documents cannot drift.
struct OptionInfo {
  std::string name;      // long name: "config"
  char short_name = 0;   // 'c', or 0
  std::string value;     // "FILE" for an option that takes a value; "" for a flag
  std::string fallback;  // the default, when declared with default_value()
  std::string doc;
};
struct CommandInfo {
  std::string name;
  std::string about;  // the help text above the options
  std::vector<OptionInfo> options;
};

// While a Describing is alive (one at a time, main thread), CommandLine::parse() does not
// parse: it records the command's declarations and returns 0, so running a command's
// function with no arguments reads its options without running it.
class Describing {
 public:
  Describing();
  ~Describing();
  Describing(const Describing&) = delete;
  Describing& operator=(const Describing&) = delete;
  std::vector<CommandInfo> commands;
};

// One command's options. Declare them with add(), then parse(); read them through the
// variables bound with po::value(&var) and set().
class CommandLine {
 public:
  // `command` is the subcommand's name ("check"); `about` the help text above the options
  // (without the trailing "options" heading).
  CommandLine(std::string command, const std::string& about);

  // The options, as with po::options_description::add_options(); --help/-h is already there.
  po::options_description_easy_init add() { return options_.add_options(); }

  // Parses argv (argv[0] is the command's own name). nullopt: go on. Otherwise the exit code:
  // 0 after printing the help to stdout (--help), 2 after printing one line
  // "pgbust CMD: WHAT (see pgbust CMD --help)" to stderr (an unknown flag, a missing or
  // bad value, a positional argument unless positional() asked for them).
  std::optional<int> parse(int argc, char** argv);

  // The command takes positional arguments (`pgbust test RULES TESTS...`): parse() stores
  // them in `out`, in order.
  void positional(std::vector<std::string>* out) { positional_ = out; }

  // Whether the option was given on the command line.
  bool set(const char* name) const { return values_.count(name) > 0; }

  // Prints "pgbust CMD: MESSAGE (see pgbust CMD --help)" to stderr; returns 2 (usage error).
  int usage_error(const std::string& message) const;

  // "pgbust CMD: ", the start of the command's other error lines.
  std::string prefix() const { return "pgbust " + command_ + ": "; }

 private:
  std::string command_;
  std::string about_;
  po::options_description options_;
  po::variables_map values_;
  std::vector<std::string>* positional_ = nullptr;
};

}  // namespace pgbust::cli
