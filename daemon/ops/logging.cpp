// The daemon's log output: the journal's native protocol, or stderr (text, journald priority
// prefixes, or JSON lines).
#include "pgbust/ops/logging.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

#include "pgbust/core/json.hpp"

namespace pgbust::logging {

namespace {

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warning";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// Text: local "2026-01-31 12:00:00.123"; JSON: UTC "2026-01-31T12:00:00.123Z".
std::string format_time(std::chrono::system_clock::time_point t, bool utc) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
  std::time_t tt = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  if (utc)
    ::gmtime_r(&tt, &tm);
  else
    ::localtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d%c%02d:%02d:%02d.%03d%s", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, utc ? 'T' : ' ', tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms), utc ? "Z" : "");
  return buf;
}

// Writes each record with one write(2) to fd 2, so lines from one process never interleave.
class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit StderrSink(Options o) : opt_(std::move(o)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    bool json = opt_.format == Format::Json;
    if (opt_.journal_native && !json && send(journal_fields(msg.level, text, log_fields())) >= 0)
      return;
    std::string time = opt_.journal && !json ? "" : format_time(msg.time, json);
    std::string out = json ? format_json(msg.level, text, time, opt_.journal)
                           : format_text(msg.level, text, time, opt_.journal);
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
      ssize_t n = ::write(STDERR_FILENO, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // nowhere left to report it
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }
  void flush_() override {}

 private:
  int send(const std::vector<std::string>& fields) {
    if (opt_.journal_send) return opt_.journal_send(fields);
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (const auto& f : fields) iov.push_back({const_cast<char*>(f.data()), f.size()});
    return sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
  }

  Options opt_;
};

}  // namespace

bool journal_stream_is_stderr() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  char tail = 0;
  if (std::sscanf(env, "%llu:%llu%c", &dev, &ino, &tail) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

bool journal_socket_exists() {
  struct stat st {};
  return ::stat("/run/systemd/journal/socket", &st) == 0 && S_ISSOCK(st.st_mode);
}

int journal_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical:
      return 2;  // LOG_CRIT
    case spdlog::level::err:
      return 3;  // LOG_ERR
    case spdlog::level::warn:
      return 4;  // LOG_WARNING
    case spdlog::level::info:
      return 6;  // LOG_INFO
    default:
      return 7;  // LOG_DEBUG
  }
}

std::string format_text(spdlog::level::level_enum level, std::string_view message,
                        std::string_view time, bool journal) {
  // journald makes each line its own entry: every line of a multi-line message (all the
  // errors of a rules file) carries the priority, the first also the level word.
  std::string prefix = journal ? "<" + std::to_string(journal_priority(level)) + ">" : "";
  std::string out = prefix;
  if (!time.empty()) out.append(time).push_back(' ');
  out.append(spdlog::level::to_string_view(level).data(),
             spdlog::level::to_string_view(level).size());
  out += ": ";
  for (char c : message) {
    out.push_back(c);
    if (c == '\n') out += prefix;
  }
  out.push_back('\n');
  return out;
}

std::string format_json(spdlog::level::level_enum level, std::string_view message,
                        std::string_view time, bool journal) {
  std::string out;
  if (journal) out = "<" + std::to_string(journal_priority(level)) + ">";
  out += "{\"time\":";
  json::append_quoted(out, time);
  out += ",\"level\":";
  json::append_quoted(out, level_name(level));
  out += ",\"message\":";
  json::append_quoted(out, message);
  out += "}\n";
  return out;
}

std::vector<std::string> journal_fields(spdlog::level::level_enum level, std::string_view message,
                                        const LogFields& fields) {
  std::vector<std::string> out{"PRIORITY=" + std::to_string(journal_priority(level)),
                               "MESSAGE=" + std::string(message), "SYSLOG_IDENTIFIER=pgbust"};
  if (!fields.source.empty()) out.push_back("PGBUST_SOURCE=" + std::string(fields.source));
  if (!fields.rule.empty()) out.push_back("PGBUST_RULE=" + std::string(fields.rule));
  if (!fields.target.empty()) out.push_back("PGBUST_TARGET=" + std::string(fields.target));
  return out;
}

std::string early_error(std::string_view text) {
  if (!journal_stream_is_stderr()) return std::string(text) + "\n";
  std::string out = "<3>";
  for (char c : text) {
    out.push_back(c);
    if (c == '\n') out += "<3>";
  }
  return out + "\n";
}

void setup(const Options& options) {
  auto logger = std::make_shared<spdlog::logger>("pgbust", std::make_shared<StderrSink>(options));
  spdlog::drop("pgbust");
  spdlog::register_logger(logger);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(options.level));
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace pgbust::logging
