// Test doubles for the pipeline's unit tests: a Source that records what it is confirmed, and
// an Applier that records batches and completes them only when the test says so.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "pgbust/core/applier.hpp"
#include "pgbust/core/source.hpp"

namespace pgbust::test_pipeline {

class FakeSource : public Source {
 public:
  explicit FakeSource(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  void confirm(Position position) override {
    if (!confirmed.empty()) CHECK_MESSAGE(position > confirmed.back(), "confirmed backwards");
    confirmed.push_back(position);
  }
  SourceStatus status() const override { return {}; }
  void stop_reading() override {}
  void close() noexcept override {}
  int fd() const override { return -1; }
  short events() const override { return 0; }
  void on_ready(short) override {}
  TimePoint deadline() const override { return kNever; }
  void on_timer(TimePoint) override {}

  // The last confirmed position, 0 when none.
  Position last() const { return confirmed.empty() ? 0 : confirmed.back(); }
  std::vector<Position> confirmed;

 private:
  std::string name_;
};

class FakeApplier : public Applier {
 public:
  struct Handed {
    Batch batch;
    std::function<void()> done;
    bool completed = false;
  };
  void apply(Batch batch, std::function<void()> done) override {
    handed.push_back({std::move(batch), std::move(done), false});
  }
  // What idle() answers: true plays an applier whose every batch waits for a retry.
  bool idle_now = false;
  bool idle() const override { return idle_now; }
  // Completes the i-th batch handed over (in any order the test likes).
  void complete(std::size_t i) {
    REQUIRE(i < handed.size());
    REQUIRE_FALSE(handed[i].completed);
    handed[i].completed = true;
    auto done = std::move(handed[i].done);
    done();  // may hand over further batches
  }
  // Completes every batch handed over and not yet completed, including ones handed over by
  // those completions, in order.
  void complete_all() {
    for (std::size_t i = 0; i < handed.size(); ++i)
      if (!handed[i].completed) complete(i);
  }
  std::size_t outstanding() const {
    std::size_t n = 0;
    for (const auto& h : handed) n += h.completed ? 0 : 1;
    return n;
  }
  std::deque<Handed> handed;  // deque: complete() may append while a reference is held
};

}  // namespace pgbust::test_pipeline
