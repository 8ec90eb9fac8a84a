// The coverage check's side connection: connect, query, hand the result over, wait.
#include "logical_coverage.hpp"

#include <spdlog/spdlog.h>

#include "pgbust/core/error.hpp"
#include "pgbust/pg/conninfo.hpp"

namespace pgbust::detail {

CoverageCheck::CoverageCheck(std::string name, std::string conninfo, std::string publication,
                             std::chrono::milliseconds interval, std::chrono::milliseconds timeout,
                             OnResult on_result)
    : name_(std::move(name)),
      conninfo_(std::move(conninfo)),
      publication_(std::move(publication)),
      interval_(interval),
      timeout_(timeout),
      on_result_(std::move(on_result)) {}

void CoverageCheck::stop() noexcept {
  stopped_ = true;
  conn_.close();
}

TimePoint CoverageCheck::deadline() const {
  if (stopped_) return kNever;
  return conn_.open() && (!conn_.connected() || conn_.busy()) ? give_up_ : due_;
}

void CoverageCheck::on_timer(TimePoint now) {
  if (stopped_) return;
  if (conn_.open() && (!conn_.connected() || conn_.busy())) {
    if (now >= give_up_) fail("timed out after " + std::to_string(timeout_.count()) + " ms");
    return;
  }
  if (now < due_) return;
  try {
    give_up_ = now + timeout_;
    if (!conn_.open()) {
      conn_.start(conninfo_, "pgbust coverage check", [](std::string_view) {});
      return;  // step() sends the query once connected
    }
    step();
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

void CoverageCheck::on_ready(short revents) {
  if (stopped_) return;
  try {
    if (!conn_.connected()) {
      if (!conn_.continue_connect()) return;
      step();
      return;
    }
    conn_.pump(revents);
    pg::Result r;
    if (!conn_.take_result(r, "checking publication coverage")) {
      if (!conn_.busy()) conn_.close();  // input while idle: the server closed it
      return;
    }
    due_ = Clock::now() + interval_;
    if (!r) throw Error("checking publication coverage on " + conn_.server() + ": no result");
    if (!last_error_.empty()) spdlog::info("{}: publication coverage check works again", name_);
    last_error_.clear();
    on_result_(pgcatalog::read_coverage(r.get(), publication_));
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

void CoverageCheck::step() {
  if (tables_.empty()) {
    due_ = Clock::now() + interval_;
    return;
  }
  conn_.send(pgcatalog::coverage_sql(publication_, tables_));
}

void CoverageCheck::fail(const std::string& what) {
  conn_.close();
  due_ = Clock::now() + interval_;
  if (what != last_error_)
    spdlog::warn("{}: cannot check publication coverage (retrying every {} ms): {}", name_,
                 interval_.count(), what);
  last_error_ = what;
}

}  // namespace pgbust::detail
