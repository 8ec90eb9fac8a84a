// The logical source's side connection: every coverage_interval (and when asked, on a
// reload) it runs the publication coverage query (pgcatalog::coverage_sql) on an ordinary,
// non-blocking connection of its own, so a check never waits on the replication stream nor
// blocks the loop; and it answers the source's catalog lookups (which rule table a partition
// belongs to) while the source holds its stream. The loop watches it beside the source
// (Source::side()).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pgbust/core/loop.hpp"
#include "pgbust/pg/async.hpp"
#include "pgbust/pg/catalog.hpp"

namespace pgbust::detail {

class CoverageCheck final : public Pollable {
 public:
  using OnResult = std::function<void(const pgcatalog::Coverage&)>;
  CoverageCheck(std::string name, std::string conninfo, std::string publication,
                std::chrono::milliseconds interval, std::chrono::milliseconds timeout,
                OnResult on_result);

  // The answer to a lookup: its result, or null and what went wrong (failed, timed out).
  using OnLookup = std::function<void(const PGresult* result, const std::string& error)>;

  void set_tables(std::vector<std::string> tables) { tables_ = std::move(tables); }
  void check_soon() { due_ = Clock::now(); }  // a reload: check now, not at the next interval
  // One query with parameters, run ahead of the next coverage check (connecting first when
  // needed); `done` is called exactly once, from the loop, within `timeout`. One at a time: a
  // new lookup replaces one not yet answered (whose `done` is then never called).
  void lookup(std::string sql, std::vector<std::optional<std::string>> params,
              std::chrono::milliseconds timeout, OnLookup done);
  void stop() noexcept;

  int fd() const override { return conn_.fd(); }
  short events() const override { return conn_.open() ? conn_.events(true) : 0; }
  void on_ready(short revents) override;
  TimePoint deadline() const override;
  void on_timer(TimePoint now) override;

 private:
  struct Lookup {
    std::string sql;
    std::vector<std::optional<std::string>> params;
    OnLookup done;
    TimePoint give_up;
    bool sent = false;
  };
  enum class Query : std::uint8_t { None, Coverage, Lookup };

  void step();
  void fail(const std::string& what);
  void answer_lookup(const PGresult* result, const std::string& error);

  std::string name_, conninfo_, publication_;
  std::chrono::milliseconds interval_, timeout_;
  OnResult on_result_;
  std::vector<std::string> tables_;
  pg::AsyncConn conn_;
  bool stopped_ = false;
  TimePoint due_{};             // the next check
  TimePoint give_up_ = kNever;  // the check in flight fails at this time
  std::string last_error_;      // logged once until it changes or a check succeeds
  std::optional<Lookup> lookup_;
  Query in_flight_ = Query::None;
};

}  // namespace pgbust::detail
