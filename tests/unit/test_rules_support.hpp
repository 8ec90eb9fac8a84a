// Helpers for the rule engine's unit tests: build tables and row images, load rules from
// text, and record what an Engine asks for as readable lines.
#pragma once

#include <doctest/doctest.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "pgbust/rules/rules.hpp"

namespace pgbust::test_rules {

// Records Sink calls as lines: "fired R", "delete K", "delete_pattern P", "bump K",
// "widened R: DETAIL".
struct Recorder : rules::Sink {
  std::vector<std::string> lines;
  std::vector<Unknown> whys;
  void fired(const rules::Rule& r) override { lines.push_back("fired " + r.name); }
  void emit(const rules::Rule&, rules::Action a, std::string_view key) override {
    lines.push_back(std::string(rules::to_string(a)) + " " + std::string(key));
  }
  void widened(const rules::Rule& r, Unknown why, std::string_view detail) override {
    lines.push_back("widened " + r.name + ": " + std::string(detail));
    whys.push_back(why);
  }
  // Only the emitted keys (no fired/widened lines).
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& l : lines)
      if (l.rfind("fired ", 0) != 0 && l.rfind("widened ", 0) != 0) out.push_back(l);
    return out;
  }
  bool has_widened() const {
    for (const auto& l : lines)
      if (l.rfind("widened ", 0) == 0) return true;
    return false;
  }
  std::string widened_line() const {
    for (const auto& l : lines)
      if (l.rfind("widened ", 0) == 0) return l;
    return "";
  }
};

inline std::shared_ptr<const rules::RuleSet> load_rules(const std::string& yaml) {
  auto r = rules::RuleSet::parse(yaml, "test.yaml");
  for (const auto& e : r.errors) MESSAGE(e.str());
  REQUIRE(r.errors.empty());
  REQUIRE(r.rules);
  return r.rules;
}

// One cell of a row image: a value, NULL, or unknown for a reason.
struct Cell {
  Datum::State state = Datum::State::Value;
  Unknown why = Unknown::None;
  std::string text;
};
inline Cell val(std::string t) {
  return {Datum::State::Value, Unknown::None, std::move(t)};
}
inline Cell null_cell() {
  return {Datum::State::Null, Unknown::None, {}};
}
inline Cell unknown_cell(Unknown why) {
  return {Datum::State::Unknown, why, {}};
}

// A table and row images whose strings live as long as the fixture.
class Fixture {
 public:
  Fixture(std::string schema, std::string name, std::vector<std::string> columns,
          std::vector<std::string> key_columns) {
    table.schema = std::move(schema);
    table.name = std::move(name);
    table.columns = std::move(columns);
    for (const auto& c : table.columns) {
      bool k = false;
      for (const auto& kc : key_columns) k = k || kc == c;
      table.key.push_back(k);
    }
    table.generation = 1;
  }

  // A row image; columns not named are unknown (NotInImage).
  const RowImage* row(const std::vector<std::pair<std::string, Cell>>& cells) {
    images_.emplace_back();
    RowImage& img = images_.back();
    img.values.assign(table.columns.size(), Datum::unknown(Unknown::NotInImage));
    for (const auto& name_cell : cells) {
      // Not a structured binding: clang 14 cannot capture one in doctest's message lambda.
      const std::string& name = name_cell.first;
      const Cell& cell = name_cell.second;
      int i = table.column_index(name);
      REQUIRE_MESSAGE(i >= 0, "no column " << name);
      strings_.push_back(cell.text);
      Datum d;
      d.state = cell.state;
      d.why = cell.why;
      d.text = strings_.back();
      img.values[static_cast<std::size_t>(i)] = d;
    }
    return &img;
  }

  std::vector<std::string> run(rules::Engine& engine, Op op, const RowImage* old_row,
                               const RowImage* new_row, int* fired = nullptr) {
    Recorder rec;
    ChangeEvent ev;
    ev.op = op;
    ev.table = &table;
    ev.old_row = old_row;
    ev.new_row = new_row;
    int n = engine.evaluate(ev, rec);
    if (fired) *fired = n;
    last = rec;
    return rec.keys();
  }

  TableInfo table;
  Recorder last;

 private:
  std::deque<RowImage> images_;
  std::deque<std::string> strings_;
};

}  // namespace pgbust::test_rules
