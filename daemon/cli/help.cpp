// `pgbust help`: the overview of the commands, and the documents generated from the same
// declarations --help prints (the command table, each command's CommandLine options, the
// config and rule references): pgbust(1), pgbust.yaml(5), the README's reference section and
// the bash completion. The build runs `pgbust help --format ...` to make them, and tests
// check the README and the pages, so none of them can drift from the code.
#include <algorithm>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "pgbust/cli/commands.hpp"
#include "pgbust/cli/exit_codes.hpp"
#include "pgbust/cli/options.hpp"
#include "pgbust/core/reference.hpp"
#include "pgbust/core/version.hpp"
#include "pgbust/rules/reference.hpp"

namespace pgbust::cli {

namespace {

constexpr const char* kTagline = "keep Redis caches correct by watching PostgreSQL";

constexpr const char* kDescription =
    "pgbust reads committed changes from PostgreSQL (logical replication with pgoutput, "
    "LISTEN/NOTIFY, or polling of id/updated_at watermarks), maps each changed row through "
    "YAML rules to cache keys, and deletes those keys, deletes key patterns, bumps revision "
    "counters or publishes invalidation messages in Redis. It acts only after commit, sees "
    "every write, invalidates both sides of a row that moves, and never confirms a commit to "
    "PostgreSQL before its invalidations are applied. Without a command, `run` is meant.";

struct Entry {
  const char* name;
  const char* doc;
};

constexpr Entry kExitStatus[] = {
    {"0",
     "Success; for `status`: the daemon is healthy, catching up, or standby (another host is "
     "active)."},
    {"1",
     "A runtime failure (the unit restarts the daemon); for `check` and `setup`: errors "
     "were found; for `status`: the daemon is degraded or starting."},
    {"2", "A usage error: an unknown flag, a missing or bad value, a stray argument."},
    {"3", "For `status`: no daemon answers."},
    {"78",
     "EX_CONFIG: the config file or the rules are invalid; the unit does not restart "
     "(RestartPreventExitStatus=78)."},
};
static_assert(kExitOk == 0 && kExitFailure == 1 && kExitUsage == 2 && kExitConfig == 78,
              "kExitStatus documents these values");

constexpr Entry kEnvironment[] = {
    {"PGPASSFILE, PGSERVICEFILE, PGHOST, PGUSER, ...",
     "libpq's own variables: how PostgreSQL passwords reach pgbust (never the command line or "
     "the config file)."},
    {"JOURNAL_STREAM",
     "Set by systemd when stderr is the journal: log lines then start with "
     "their <N> syslog priority (log.journal: auto)."},
    {"NOTIFY_SOCKET",
     "Set by systemd (Type=notify): readiness, reloads and the status line are "
     "reported through sd_notify."},
    {"STATE_DIRECTORY",
     "Set by systemd from StateDirectory=: the default state_dir (its first "
     "path)."},
    {"TZDIR", "Where time zone files are read from (default /usr/share/zoneinfo)."},
};

constexpr Entry kFiles[] = {
    {"/etc/pgbust/pgbust.yaml", "The configuration, see pgbust.yaml(5)."},
    {"/etc/pgbust/rules.d/", "The rules: *.yaml and *.yml files, read in name order."},
    {"/etc/default/pgbust", "Environment for the daemon under systemd (PGPASSFILE=...)."},
    {"/var/lib/pgbust/",
     "State: the slot record and poll watermarks (the unit's "
     "StateDirectory=)."},
    {"/lib/systemd/system/pgbust.service, pgbust@.service",
     "The units; pgbust@NAME runs /etc/pgbust/NAME.yaml."},
};

// Values the completion offers for an option's argument.
const char* choices(const std::string& command, const std::string& option) {
  if (option == "log-level") return "trace debug info warn error off";
  if (command == "explain" && option == "op") return "insert update delete truncate";
  if (command == "help" && option == "format") return "man1 man5 markdown bash-completion";
  return nullptr;
}

std::vector<CommandInfo> describe_all() {
  Describing d;
  for (const auto& c : commands()) {
    char name[64];
    std::strncpy(name, c.name, sizeof name - 1);
    name[sizeof name - 1] = '\0';
    char* argv[] = {name, nullptr};
    std::size_t before = d.commands.size();
    c.main(1, argv);
    // A command that does not declare through CommandLine is listed without options.
    if (d.commands.size() != before + 1) d.commands.resize(before + 1);
    d.commands.back().name = c.name;
  }
  return std::move(d.commands);
}

// A command's about text as blocks: the first line is the summary and is dropped (the table
// has it); paragraphs are separated by blank lines; a paragraph whose lines are indented is
// code, shown as written.
std::vector<rules::Prose> about_blocks(const std::string& about, std::vector<std::string>& keep) {
  std::vector<std::string> lines;
  std::istringstream in(about);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::vector<rules::Prose> out;
  std::string para;
  bool code = false;
  auto flush = [&] {
    if (!para.empty()) {
      keep.push_back(para);
      out.push_back({code, keep.back()});
    }
    para.clear();
  };
  keep.reserve(lines.size() + 1);  // the string_views in `out` point into `keep`
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l.empty()) {
      flush();
      continue;
    }
    bool indented = l.starts_with("  ");
    if (para.empty()) code = indented;
    if (code)
      para += (para.empty() ? "" : "\n") + l.substr(2);
    else
      para += (para.empty() ? "" : " ") + l;
  }
  flush();
  return out;
}

std::string option_label(const OptionInfo& o) {
  std::string s;
  if (o.short_name) s += std::string("-") + o.short_name + ", ";
  s += "--" + o.name;
  if (!o.value.empty()) s += " " + o.value;
  return s;
}

// ---- man ----------------------------------------------------------------------------------

// Escapes text for roff; `code` spans become bold.
std::string man(std::string_view text, bool markup = true) {
  std::string out;
  bool in_code = false;
  for (char c : text) {
    if (c == '\\')
      out += "\\e";
    else if (c == '-')
      out += "\\-";
    else if (c == '`' && markup) {
      out += in_code ? "\\fR" : "\\fB";
      in_code = !in_code;
    } else {
      out += c;
    }
  }
  // A line starting with . or ' would be a request.
  std::string safe;
  bool line_start = true;
  for (char c : out) {
    if (line_start && (c == '.' || c == '\'')) safe += "\\&";
    safe += c;
    line_start = c == '\n';
  }
  return safe;
}

void man_blocks(std::ostream& os, std::span<const rules::Prose> blocks) {
  for (const auto& b : blocks) {
    if (b.code)
      os << ".PP\n.nf\n.RS 4\n" << man(b.text, false) << "\n.RE\n.fi\n";
    else
      os << ".PP\n" << man(b.text) << "\n";
  }
}

void man_entries(std::ostream& os, std::span<const Entry> entries) {
  for (const auto& e : entries) os << ".TP\n.B " << man(e.name) << "\n" << man(e.doc) << "\n";
}

void man_header(std::ostream& os, const char* title, int section, const char* name,
                const char* what) {
  os << ".\\\" Generated by `pgbust help --format man" << section
     << "`: edit daemon/cli/help.cpp,\n.\\\" the commands' options or the references, not this "
        "file.\n";
  os << ".TH " << title << " " << section << " \"\" \"pgbust " << version() << "\" \""
     << (section == 1 ? "User Commands" : "File Formats") << "\"\n";
  os << ".SH NAME\n" << name << " \\- " << man(what) << "\n";
}

void man1(std::ostream& os, const std::vector<CommandInfo>& infos) {
  man_header(os, "PGBUST", 1, "pgbust", kTagline);
  os << ".SH SYNOPSIS\n.B pgbust\n[\\fICOMMAND\\fR] [\\fIOPTIONS\\fR]\n.br\n.B pgbust "
        "\\-\\-version\n";
  os << ".SH DESCRIPTION\n" << man(kDescription) << "\n";
  os << ".PP\nEvery command has \\fB\\-\\-help\\fR (\\fB\\-h\\fR). A usage error is one line "
        "on stderr, \\fIpgbust COMMAND: WHAT (see pgbust COMMAND \\-\\-help)\\fR, with exit "
        "status 2.\n";
  os << ".SH COMMANDS\n";
  for (std::size_t i = 0; i < infos.size(); ++i) {
    const CommandInfo& c = infos[i];
    os << ".SS pgbust " << man(c.name) << "\n" << man(commands()[i].summary) << ".\n";
    std::vector<std::string> keep;
    man_blocks(os, about_blocks(c.about, keep));
    for (const auto& o : c.options) {
      os << ".TP\n.B " << man(option_label(o)) << "\n" << man(o.doc);
      if (!o.fallback.empty()) os << " (default: " << man(o.fallback) << ")";
      os << "\n";
    }
  }
  os << ".SH \"EXIT STATUS\"\n";
  man_entries(os, kExitStatus);
  os << ".SH ENVIRONMENT\n";
  man_entries(os, kEnvironment);
  os << ".SH FILES\n";
  man_entries(os, kFiles);
  os << ".SH \"SEE ALSO\"\n.BR pgbust.yaml (5),\n.BR systemctl (1),\n.BR journalctl (1)\n";
}

void man_keys(std::ostream& os, std::span<const KeyDoc> keys) {
  for (const auto& k : keys) {
    os << ".TP\n.B " << man(k.path) << "\n" << man(k.type);
    if (!k.fallback.empty()) os << "; default: " << man(k.fallback);
    os << ".\n.br\n" << man(k.doc) << "\n";
  }
}

void man5(std::ostream& os) {
  man_header(os, "PGBUST.YAML", 5, "pgbust.yaml", "pgbust's configuration and rules files");
  os << ".SH SYNOPSIS\n/etc/pgbust/pgbust.yaml\n.br\n/etc/pgbust/rules.d/*.yaml\n";
  os << ".SH DESCRIPTION\n"
     << man("The configuration is one YAML file, given to every command with `--config`. "
            "Unknown keys are errors, every problem is reported at once as FILE:LINE:COL, and "
            "`pgbust check --config FILE` validates the file and its rules. Durations are "
            "written like 500ms, 2s, 5m or 1h; sizes like 1048576, 512MB or 1GB. `systemctl "
            "reload pgbust` (SIGHUP) re-reads the rules, log.level and status.interval; other "
            "changes take effect on restart.")
     << "\n";
  os << ".SH \"CONFIGURATION KEYS\"\n";
  man_keys(os, config::keys());
  os << ".SH RULES\n"
     << man("The rules file (or each file of a rules.d directory, read in name order) has "
            "these keys. Each rule maps a change of one table to the keys it invalidates.")
     << "\n";
  man_keys(os, rules::keys());
  os << ".SS Templates\n";
  man_blocks(os, rules::templates_prose());
  os << ".SS Filters\n";
  for (const auto& f : rules::filters())
    os << ".TP\n.B " << man(f.usage) << "\n" << man(f.doc) << "\n";
  os << ".SS Conditions\n";
  man_blocks(os, rules::conditions_prose());
  os << ".SH FILES\n";
  man_entries(os, std::span(kFiles).first(2));
  os << ".SH \"SEE ALSO\"\n.BR pgbust (1)\n";
}

// ---- markdown -----------------------------------------------------------------------------

std::string cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

void md_blocks(std::ostream& os, std::span<const rules::Prose> blocks) {
  for (const auto& b : blocks) {
    if (b.code)
      os << "```\n" << b.text << "\n```\n\n";
    else
      os << b.text << "\n\n";
  }
}

void md_keys(std::ostream& os, std::span<const KeyDoc> keys) {
  os << "| key | type | default | meaning |\n|---|---|---|---|\n";
  for (const auto& k : keys)
    os << "| `" << k.path << "` | " << cell(k.type) << " | " << cell(k.fallback) << " | "
       << cell(k.doc) << " |\n";
  os << "\n";
}

void md_entries(std::ostream& os, const char* head, std::span<const Entry> entries) {
  os << "| " << head << " | meaning |\n|---|---|\n";
  for (const auto& e : entries) os << "| `" << cell(e.name) << "` | " << cell(e.doc) << " |\n";
  os << "\n";
}

void markdown(std::ostream& os, const std::vector<CommandInfo>& infos) {
  os << "### Commands\n\n";
  for (std::size_t i = 0; i < infos.size(); ++i) {
    const CommandInfo& c = infos[i];
    os << "#### `pgbust " << c.name << "`\n\n" << commands()[i].summary << ".\n\n";
    std::vector<std::string> keep;
    md_blocks(os, about_blocks(c.about, keep));
    os << "| option | meaning |\n|---|---|\n";
    for (const auto& o : c.options) {
      os << "| `" << cell(option_label(o)) << "` | " << cell(o.doc);
      if (!o.fallback.empty()) os << " (default: " << cell(o.fallback) << ")";
      os << " |\n";
    }
    os << "\n";
  }
  os << "### Exit status\n\n";
  md_entries(os, "status", kExitStatus);
  os << "### Environment\n\n";
  md_entries(os, "variable", kEnvironment);
  os << "### Files\n\n";
  md_entries(os, "path", kFiles);
  os << "### Configuration keys (pgbust.yaml)\n\n"
     << "Durations: `500ms`, `2s`, `5m`, `1h`; sizes: `1048576`, `512MB`, `1GB`.\n\n";
  md_keys(os, config::keys());
  os << "### Rules\n\n";
  md_keys(os, rules::keys());
  md_blocks(os, rules::templates_prose());
  os << "| filter | meaning |\n|---|---|\n";
  for (const auto& f : rules::filters())
    os << "| `" << cell(f.usage) << "` | " << cell(f.doc) << " |\n";
  os << "\n";
  md_blocks(os, rules::conditions_prose());
}

// ---- bash completion ----------------------------------------------------------------------

void bash_completion(std::ostream& os, const std::vector<CommandInfo>& infos) {
  os << "# bash completion for pgbust. Generated by `pgbust help --format bash-completion`.\n"
        "# shellcheck shell=bash\n"
        "_pgbust() {\n"
        "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd=run\n"
        "  if [[ $COMP_CWORD -eq 1 && $cur != -* ]]; then\n"
        "    COMPREPLY=($(compgen -W '";
  for (std::size_t i = 0; i < infos.size(); ++i) os << (i ? " " : "") << infos[i].name;
  os << "' -- \"$cur\"))\n"
        "    return\n"
        "  fi\n"
        "  [[ ${COMP_WORDS[1]} != -* ]] && cmd=${COMP_WORDS[1]}\n"
        "  local opts=\n"
        "  case $cmd in\n";
  for (const auto& c : infos) {
    os << "    " << c.name << ")\n      case $prev in\n";
    std::string words;
    for (const auto& o : c.options) {
      std::string flags = "--" + o.name;
      if (o.short_name) flags = std::string("-") + o.short_name + "|" + flags;
      words += (words.empty() ? "" : " ") + ("--" + o.name);
      if (o.value.empty()) continue;
      if (const char* values = choices(c.name, o.name))
        os << "        " << flags << ") COMPREPLY=($(compgen -W '" << values
           << "' -- \"$cur\")); return ;;\n";
      else
        os << "        " << flags << ") return ;;  # " << o.value << ": default completion\n";
    }
    os << "      esac\n      opts='" << words << "' ;;\n";
  }
  os << "  esac\n"
        "  if [[ $cmd == help && $COMP_CWORD -eq 2 && $cur != -* ]]; then\n"
        "    COMPREPLY=($(compgen -W '";
  for (std::size_t i = 0; i < infos.size(); ++i) os << (i ? " " : "") << infos[i].name;
  os << "' -- \"$cur\"))\n"
        "    return\n"
        "  fi\n"
        "  COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
        "}\n"
        "complete -o bashdefault -o default -F _pgbust pgbust\n";
}

void overview(std::ostream& os) {
  os << "usage: pgbust [COMMAND] [OPTIONS]\n\npgbust: " << kTagline << ".\n\ncommands:\n";
  for (const auto& c : commands()) {
    std::string name = c.name;
    name.resize(std::max<std::size_t>(name.size() + 1, 10), ' ');
    os << "  " << name << c.summary << "\n";
  }
  os << "\n`pgbust COMMAND --help` lists each command's options; `man pgbust` and "
        "`man pgbust.yaml` describe them all.\n";
}

}  // namespace

int help(int argc, char** argv) {
  // `pgbust help COMMAND` is `pgbust COMMAND --help`.
  if (argc >= 2 && argv[1][0] != '-') {
    for (const auto& c : commands()) {
      if (std::strcmp(argv[1], c.name) != 0) continue;
      char help_flag[] = "--help";
      char* args[] = {argv[1], help_flag, nullptr};
      return c.main(2, args);
    }
    std::cerr << "pgbust help: unknown command '" << argv[1] << "' (see pgbust --help)\n";
    return kExitUsage;
  }
  CommandLine cl("help",
                 "pgbust help: this overview, or a command's help (pgbust help COMMAND)\n\n"
                 "With --format, the documents the build generates from the same declarations "
                 "as --help:\nthe pgbust(1) and pgbust.yaml(5) man pages, the README's "
                 "reference section and the\nbash completion.");
  std::string format;
  cl.add()("format", po::value(&format), "man1, man5, markdown or bash-completion");
  if (auto exit = cl.parse(argc, argv)) return *exit;
  if (format.empty()) {
    overview(std::cout);
    return kExitOk;
  }
  if (format == "man5") {
    man5(std::cout);
    return kExitOk;
  }
  if (format != "man1" && format != "markdown" && format != "bash-completion")
    return cl.usage_error("--format '" + format +
                          "': expected man1, man5, markdown or bash-completion");
  std::vector<CommandInfo> infos = describe_all();
  if (format == "man1")
    man1(std::cout, infos);
  else if (format == "markdown")
    markdown(std::cout, infos);
  else
    bash_completion(std::cout, infos);
  return kExitOk;
}

}  // namespace pgbust::cli
