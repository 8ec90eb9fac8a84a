// The shared command-line parser of the commands: one wording for usage errors and help.
#include "pgbust/cli/options.hpp"

#include <iostream>

namespace pgbust::cli {

CommandLine::CommandLine(std::string command, const std::string& about)
    : command_(std::move(command)), options_(about + "\n\noptions") {
  options_.add_options()("help,h", "show this help");
}

std::optional<int> CommandLine::parse(int argc, char** argv) {
  try {
    po::parsed_options parsed = po::command_line_parser(argc, argv).options(options_).run();
    auto extra = po::collect_unrecognized(parsed.options, po::include_positional);
    if (positional_) {
      for (const auto& e : extra) {
        if (e.size() > 1 && e[0] == '-') return usage_error("unrecognised option '" + e + "'");
        positional_->push_back(e);
      }
    } else if (!extra.empty()) {
      return usage_error("unexpected argument '" + extra.front() + "'");
    }
    po::store(parsed, values_);
    po::notify(values_);
  } catch (const po::error& e) {
    return usage_error(e.what());
  }
  if (set("help")) {
    std::cout << options_;
    return 0;
  }
  return std::nullopt;
}

int CommandLine::usage_error(const std::string& message) const {
  std::cerr << prefix() << message << " (see pgbust " << command_ << " --help)\n";
  return 2;
}

}  // namespace pgbust::cli
