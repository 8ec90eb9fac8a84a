// The coverage check's side connection: connect, query, hand the result over, wait.
#include "logical_coverage.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

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
      on_result_(std::move(on_result)) {
  if (interval_.count() <= 0) due_ = kNever;  // only when asked (check_soon)
}

void CoverageCheck::stop() noexcept {
  stopped_ = true;
  lookup_.reset();
  in_flight_ = Query::None;
  conn_.close();
}

void CoverageCheck::lookup(std::string sql, std::vector<std::optional<std::string>> params,
                           std::chrono::milliseconds timeout, OnLookup done) {
  if (stopped_) return;
  // A lookup replaced while in flight: its answer is dropped when it arrives.
  lookup_ = Lookup{std::move(sql), std::move(params), std::move(done), Clock::now() + timeout};
  try {
    if (!conn_.open()) {
      give_up_ = lookup_->give_up;
      conn_.start(conninfo_, "pgbust coverage check", [](std::string_view) {});
      return;  // step() sends it once connected
    }
    if (conn_.connected() && !conn_.busy()) step();
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

TimePoint CoverageCheck::deadline() const {
  if (stopped_) return kNever;
  TimePoint t = conn_.open() && (!conn_.connected() || conn_.busy()) ? give_up_ : due_;
  if (lookup_) t = std::min(t, lookup_->give_up);
  return t;
}

void CoverageCheck::on_timer(TimePoint now) {
  if (stopped_) return;
  if (lookup_ && now >= lookup_->give_up) {
    const bool in_flight = lookup_->sent;
    answer_lookup(nullptr, "timed out");
    // Its answer would arrive on this connection after all: start afresh.
    if (in_flight) fail("a catalog lookup timed out");
  }
  if (conn_.open() && (!conn_.connected() || conn_.busy())) {
    if (now >= give_up_) fail("timed out after " + std::to_string(timeout_.count()) + " ms");
    return;
  }
  if (now < due_ && !lookup_) return;
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
    const Query query = in_flight_;
    if (!conn_.take_result(r, query == Query::Lookup ? "looking up a relation"
                                                     : "checking publication coverage")) {
      if (!conn_.busy()) conn_.close();  // input while idle: the server closed it
      return;
    }
    in_flight_ = Query::None;
    if (query == Query::Lookup) {
      if (lookup_ && lookup_->sent) answer_lookup(r.get(), r ? "" : "no result");
    } else {
      due_ = interval_.count() > 0 ? Clock::now() + interval_ : kNever;
      if (!r) throw Error("checking publication coverage on " + conn_.server() + ": no result");
      if (!last_error_.empty()) spdlog::info("{}: publication coverage check works again", name_);
      last_error_.clear();
      on_result_(pgcatalog::read_coverage(r.get(), publication_));
    }
    if (!stopped_ && conn_.connected() && !conn_.busy()) step();  // what waited for it
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

// Sends what is due, a lookup first; nothing when idle.
void CoverageCheck::step() {
  if (lookup_ && !lookup_->sent) {
    conn_.send(lookup_->sql, lookup_->params);
    lookup_->sent = true;
    in_flight_ = Query::Lookup;
    give_up_ = lookup_->give_up;
    return;
  }
  const auto now = Clock::now();
  if (now < due_) return;
  if (tables_.empty()) {
    due_ = interval_.count() > 0 ? now + interval_ : kNever;
    return;
  }
  conn_.send(pgcatalog::coverage_sql(publication_, tables_));
  in_flight_ = Query::Coverage;
  give_up_ = now + timeout_;
}

void CoverageCheck::answer_lookup(const PGresult* result, const std::string& error) {
  auto l = std::move(*lookup_);
  lookup_.reset();
  l.done(result, error.empty()
                     ? error
                     : error + " (on " +
                           (conn_.open() ? conn_.server() : pg::describe_conninfo(conninfo_)) +
                           ")");
}

void CoverageCheck::fail(const std::string& what) {
  const Query query = in_flight_;
  in_flight_ = Query::None;
  conn_.close();
  if (lookup_) answer_lookup(nullptr, what);
  if (query == Query::Lookup) return;  // the coverage check keeps its schedule
  due_ = interval_.count() > 0 ? Clock::now() + interval_ : kNever;
  if (what != last_error_)
    spdlog::warn("{}: cannot check publication coverage (retrying every {} ms): {}", name_,
                 interval_.count(), what);
  last_error_ = what;
}

}  // namespace pgbust::detail
