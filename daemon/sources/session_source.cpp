// SessionSource: the public source classes' forwarding to their implementation, once.
#include "pgbust/sources/session_source.hpp"

#include "source_impl.hpp"

namespace pgbust {

SessionSource::SessionSource() = default;
SessionSource::~SessionSource() {
  if (impl_) impl_->close();
}

int SessionSource::fd() const {
  return impl_->fd();
}
short SessionSource::events() const {
  return impl_->events();
}
void SessionSource::on_ready(short revents) {
  impl_->on_ready(revents);
}
TimePoint SessionSource::deadline() const {
  return impl_->deadline();
}
void SessionSource::on_timer(TimePoint now) {
  impl_->on_timer(now);
}
const std::string& SessionSource::name() const {
  return impl_->name();
}
void SessionSource::confirm(Position position) {
  impl_->confirm(position);
}
SourceStatus SessionSource::status() const {
  return impl_->status();
}
std::string SessionSource::format_position(Position position) const {
  return "#" + std::to_string(position);
}
void SessionSource::rules_changed(const rules::RuleSet& rules) {
  impl_->rules_changed(rules);
}
void SessionSource::stop_reading() {
  impl_->stop_reading();
}
void SessionSource::close() noexcept {
  impl_->close();
}

}  // namespace pgbust
