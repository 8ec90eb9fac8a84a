// The Source and Pollable plumbing of every source, written once: each forwards to its
// implementation (a detail::SourceImpl: the logical source's, or an AsyncCore for NOTIFY and
// polling), which owns a Session for its connection.
#pragma once

#include <memory>
#include <string>

#include "pgbust/core/source.hpp"

namespace pgbust {

namespace detail {
class SourceImpl;
}

class SessionSource : public Source {
 public:
  ~SessionSource() override;
  SessionSource(const SessionSource&) = delete;
  SessionSource& operator=(const SessionSource&) = delete;

  // Pollable
  int fd() const override;
  short events() const override;
  void on_ready(short revents) override;
  TimePoint deadline() const override;
  void on_timer(TimePoint now) override;

  // Source
  const std::string& name() const override;
  void confirm(Position position) override;
  SourceStatus status() const override;
  std::string format_position(Position position) const override;  // "#42"
  void rules_changed(const rules::RuleSet& rules) override;
  void stop_reading() override;
  void close() noexcept override;

 protected:
  SessionSource();
  std::unique_ptr<detail::SourceImpl> impl_;
};

}  // namespace pgbust
