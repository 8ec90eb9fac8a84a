// What a SessionSource forwards to: a source's implementation behind its public class.
#pragma once

#include <string>

#include "pgbust/core/source.hpp"

namespace pgbust::detail {

class SourceImpl {
 public:
  virtual ~SourceImpl() = default;
  virtual int fd() const = 0;
  virtual short events() const = 0;
  virtual void on_ready(short revents) = 0;
  virtual TimePoint deadline() const = 0;
  virtual void on_timer(TimePoint now) = 0;
  virtual const std::string& name() const = 0;
  virtual void confirm(Position position) = 0;
  virtual SourceStatus status() const = 0;
  virtual void rules_changed(const rules::RuleSet&) {}
  virtual void stop_reading() = 0;
  virtual void close() noexcept = 0;
};

}  // namespace pgbust::detail
