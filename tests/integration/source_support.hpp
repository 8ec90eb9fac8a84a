// Helpers for the NOTIFY and poll source tests: a ChangeSink that records what a source
// delivers as readable lines, a bounded driver for the event loop, and the path from a
// source into a real Redis (target and pipeline).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/core/source.hpp"
#include "pgbust/pipeline/pipeline.hpp"
#include "pgbust/redis/redis.hpp"
#include "pgbust/rules/rules.hpp"

namespace pgbust::test_sources {

using namespace std::chrono_literals;

inline std::string short_reason(Unknown why) {
  switch (why) {
    case Unknown::NotifyGap:
      return "gap";
    case Unknown::NotifyOversized:
      return "oversized";
    case Unknown::NotifyMalformed:
      return "malformed";
    case Unknown::Polled:
      return "polled";
    case Unknown::ColumnMissing:
      return "missing";
    case Unknown::NotInImage:
      return "notinimage";
    default:
      return std::string(to_string(why));
  }
}

// "{a=1,b=NULL,c=?polled}" in column order of the table.
inline std::string image(const TableInfo& t, const RowImage& row) {
  std::vector<std::pair<std::string, std::string>> cells;
  for (std::size_t i = 0; i < t.columns.size(); ++i) {
    Datum d = row.at(i);
    std::string v = d.state == Datum::State::Null    ? "NULL"
                    : d.state == Datum::State::Value ? std::string(d.text)
                                                     : "?" + short_reason(d.why);
    cells.emplace_back(t.columns[i], v);
  }
  std::sort(cells.begin(), cells.end());
  std::string out = "{";
  for (std::size_t i = 0; i < cells.size(); ++i)
    out += (i ? "," : "") + cells[i].first + "=" + cells[i].second;
  return out + "}";
}

// One committed transaction as lines: "insert public.t new{...}", "update public.t old{...}
// new{...}", "delete public.t old{...}", "truncate public.t", "widen public.t gap".
struct Txn {
  std::vector<std::string> lines;
  Position position = 0;
};

class RecordingSink : public ChangeSink {
 public:
  bool accept = true;        // what accepting() answers
  bool auto_confirm = true;  // confirm each commit at once (as if Redis applied it)
  std::vector<Txn> txns;
  int begins = 0, aborts = 0;

  bool accepting() const override { return accept; }
  void begin(Source&) override {
    CHECK_FALSE(open_);  // never nested
    open_ = true;
    ++begins;
    cur_ = {};
  }
  void change(Source&, const ChangeEvent& e) override {
    CHECK(open_);
    std::string line = std::string(to_string(e.op)) + " " + e.table->qualified();
    if (e.old_row) line += " old" + image(*e.table, *e.old_row);
    if (e.new_row) line += " new" + image(*e.table, *e.new_row);
    cur_.lines.push_back(line);
  }
  void widen_table(Source&, std::string_view schema, std::string_view table, Unknown why) override {
    CHECK(open_);
    cur_.lines.push_back("widen " + std::string(schema) + "." + std::string(table) + " " +
                         short_reason(why));
  }
  void commit(Source& s, Position p, std::int64_t) override {
    CHECK(open_);
    open_ = false;
    if (!txns.empty()) CHECK(p > txns.back().position);
    cur_.position = p;
    txns.push_back(cur_);
    if (auto_confirm) s.confirm(p);
  }
  void abort(Source&) override {
    open_ = false;
    ++aborts;
  }

  // Every line of every transaction, in order.
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const auto& t : txns) out.insert(out.end(), t.lines.begin(), t.lines.end());
    return out;
  }
  std::size_t count(const std::string& line) const {
    auto all = lines();
    return static_cast<std::size_t>(std::count(all.begin(), all.end(), line));
  }
  bool has(const std::string& line) const { return count(line) > 0; }
  // Lines containing `part`.
  std::vector<std::string> matching(const std::string& part) const {
    std::vector<std::string> out;
    for (const auto& l : lines())
      if (l.find(part) != std::string::npos) out.push_back(l);
    return out;
  }

 private:
  bool open_ = false;
  Txn cur_;
};

// Runs loop rounds until `pred` holds or `timeout` passes; returns pred().
inline bool drive(Loop& loop, const std::function<bool()>& pred,
                  std::chrono::milliseconds timeout = 20s) {
  auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (pred()) return true;
    loop.run_once(50ms);
  }
  return pred();
}

// Runs loop rounds for `d` whatever happens.
inline void drive_for(Loop& loop, std::chrono::milliseconds d) {
  auto end = Clock::now() + d;
  while (Clock::now() < end) loop.run_once(20ms);
}

inline std::shared_ptr<const rules::RuleSet> load_rules(const std::string& yaml) {
  auto r = rules::RuleSet::parse(yaml, "rules.yaml");
  for (const auto& e : r.errors) MESSAGE(e.str());
  REQUIRE(r.errors.empty());
  return r.rules;
}

// A redis-server and the way into it, the Redis target and a pipeline over `rules`, both
// on `loop`: hand `pipeline` to a source as its sink to see its changes reach Redis.
struct RedisPath {
  test::Redis redis;
  redis::Target target;
  Pipeline pipeline;

  RedisPath(Loop& loop, std::shared_ptr<const rules::RuleSet> rules)
      : target(target_options(redis)),
        pipeline(std::move(rules), rules::EngineOptions{}, target, PipelineOptions{}) {
    loop.add(&target);
    loop.add(&pipeline);
  }

 private:
  static redis::Options target_options(const test::Redis& server) {
    redis::Options o;
    o.url = server.url();
    return o;
  }
};

}  // namespace pgbust::test_sources
