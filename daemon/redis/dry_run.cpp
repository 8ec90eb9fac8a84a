// The dry-run target: counts and traces what a batch would do; writes nothing to Redis.
#include "pgbust/redis/dry_run.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include "pgbust/core/error.hpp"
#include "pgbust/core/json.hpp"

namespace pgbust::redis {

DryRunTarget::DryRunTarget(const std::string& trace) : trace_path_(trace) {
  if (trace.empty()) return;
  trace_ = std::fopen(trace.c_str(), "a");
  if (!trace_)
    throw Error("--trace " + trace + ": cannot open for appending: " + std::strerror(errno));
}

DryRunTarget::~DryRunTarget() {
  close();
}

void DryRunTarget::close() noexcept {
  if (trace_) std::fclose(trace_);
  trace_ = nullptr;
}

void DryRunTarget::trace(std::string_view command, std::string_view key, std::string_view message,
                         const std::vector<std::string>& origins, std::size_t i) {
  static const std::string kNone;
  const std::string& rule = i < origins.size() ? origins[i] : kNone;
  ++commands_[std::string(command)];
  ++rule_commands_[{rule, std::string(command)}];
  ++stats_.commands;
  if (!trace_) return;
  const bool message_command = command == "PUBLISH" || command == "XADD";
  std::string line = "{\"command\":";
  json::append_quoted(line, command);
  line += command == "PUBLISH" ? ",\"channel\":" : ",\"key\":";
  json::append_quoted(line, key);
  if (!rule.empty()) {
    line += ",\"rule\":";
    json::append_quoted(line, rule);
  }
  if (message_command) {
    line += ",\"message\":";
    json::append_quoted(line, message);
  }
  line += "}\n";
  std::fwrite(line.data(), 1, line.size(), trace_);
}

void DryRunTarget::apply(Batch batch, std::function<void()> done) {
  const auto& o = batch.origins;
  for (std::size_t i = 0; i < batch.deletes.size(); ++i)
    trace("UNLINK", batch.deletes[i], {}, o.deletes, i);
  for (std::size_t i = 0; i < batch.patterns.size(); ++i)
    trace("SCAN+UNLINK", batch.patterns[i], {}, o.patterns, i);
  for (std::size_t i = 0; i < batch.bumps.size(); ++i)
    trace("INCR", batch.bumps[i], {}, o.bumps, i);
  for (std::size_t i = 0; i < batch.publishes.size(); ++i)
    trace("PUBLISH", batch.publishes[i].first, batch.publishes[i].second, o.publishes, i);
  for (std::size_t i = 0; i < batch.streams.size(); ++i)
    trace("XADD", batch.streams[i].first, batch.streams[i].second, o.streams, i);
  if (trace_) std::fflush(trace_);  // a reader of the trace sees whole batches
  stats_.unlinks += batch.deletes.size();
  stats_.patterns += batch.patterns.size();
  stats_.bumps += batch.bumps.size();
  stats_.publishes += batch.publishes.size();
  stats_.stream_entries += batch.streams.size();
  spdlog::debug("dry run: would send {} UNLINK, {} pattern deletes, {} bumps, {} PUBLISH, {} XADD",
                batch.deletes.size(), batch.patterns.size(), batch.bumps.size(),
                batch.publishes.size(), batch.streams.size());
  done_.push_back(std::move(done));  // `done` never runs inside apply()
}

TimePoint DryRunTarget::deadline() const {
  return done_.empty() ? kNever : TimePoint{};
}

void DryRunTarget::on_timer(TimePoint) {
  // Completions may hand over new batches: run only those due now.
  for (std::size_t n = done_.size(); n > 0; --n) {
    auto done = std::move(done_.front());
    done_.pop_front();
    done();
  }
}

}  // namespace pgbust::redis
