// The shared command-line parser of the commands: one wording for usage errors and help.
#include "pgbust/cli/options.hpp"

#include <cctype>
#include <iostream>

namespace pgbust::cli {

namespace {

Describing* describing = nullptr;

// "arg (=3000)" -> "3000"; "" without a default.
std::string default_of(const std::string& parameter) {
  auto at = parameter.find("(=");
  if (at == std::string::npos || parameter.back() != ')') return "";
  return parameter.substr(at + 2, parameter.size() - at - 3);
}

// What an option's value is called in the documents.
std::string value_name(const po::option_description& o) {
  std::string parameter = o.format_parameter();
  if (!parameter.empty() && !parameter.starts_with("arg"))
    return parameter.substr(0, parameter.find(' '));
  const std::string& n = o.long_name();
  if (n == "config") return "FILE";
  if (n == "rules") return "PATH";
  if (n == "postgres") return "CONNINFO";
  if (n == "listen") return "HOST:PORT";
  if (n == "redis-url") return "URL";
  if (n == "old" || n == "new") return "JSON";
  std::string out;
  for (char c : n)
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

CommandInfo describe(const std::string& command, const std::string& about,
                     const po::options_description& options) {
  CommandInfo info{command, about, {}};
  for (const auto& o : options.options()) {
    OptionInfo opt;
    opt.name = o->long_name();
    std::string shown = o->format_name();  // "-c [ --config ]" or "--db"
    if (shown.size() > 1 && shown[0] == '-' && shown[1] != '-') opt.short_name = shown[1];
    if (o->semantic()->max_tokens() > 0) {
      opt.value = value_name(*o);
      opt.fallback = default_of(o->format_parameter());
    }
    opt.doc = o->description();
    info.options.push_back(std::move(opt));
  }
  return info;
}

}  // namespace

Describing::Describing() {
  describing = this;
}
Describing::~Describing() {
  describing = nullptr;
}

CommandLine::CommandLine(std::string command, const std::string& about)
    : command_(std::move(command)), about_(about), options_(about + "\n\noptions") {
  options_.add_options()("help,h", "show this help");
}

std::optional<int> CommandLine::parse(int argc, char** argv) {
  if (describing != nullptr) {
    describing->commands.push_back(describe(command_, about_, options_));
    return 0;
  }
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
