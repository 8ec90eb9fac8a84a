// One polled table's state and what a page of its rows means (pure: no connection): which
// rows are new, inserts or updates, repeats of the overlap, and how far the watermark moves.
#pragma once

#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pgbust/core/change.hpp"
#include "pgbust/core/config.hpp"
#include "pgbust/core/loop.hpp"
#include "pgbust/sources/poll_plan.hpp"
#include "pgbust/sources/poll_state.hpp"

namespace pgbust {
struct PollCounters;
}

namespace pgbust::poll {

// A page of rows as text cells: the select list of page_query(), then (Time, TimeId) the
// "beyond the round's cursor" flag. A PGresult in the source, vectors in tests.
class Rows {
 public:
  virtual ~Rows() = default;
  virtual int count() const = 0;
  virtual bool null(int row, int col) const = 0;
  virtual std::string_view text(int row, int col) const = 0;
};

// Where a page's events go: the first call opens the transaction.
class PageOutput {
 public:
  virtual ~PageOutput() = default;
  virtual void widen(const TableInfo& table) = 0;
  virtual void change(const ChangeEvent& event) = 0;
};

struct Table {
  Table(const config::PollTable& c, std::size_t seen_limit, Clock::duration seen_for);

  // Catalog columns as the plan fetches them: the TableInfo (a new generation when they
  // changed) and the cursor's and id's positions in the select list.
  void apply_plan(Plan p);
  // A round begins at the watermark; in id mode the floor is the cursor as it was `overlap`
  // ago, so late commits are read again.
  void begin_round(TimePoint now);
  // A page of rows: events out (unless already seen at this version), the watermark moved.
  // Returns the number of rows; `changed` tells whether a transaction is due (events went
  // out, or the watermark moved since the last one).
  int deliver(const Rows& rows, TimePoint now, PageOutput& out, PollCounters& counters,
              bool& changed);
  // The table is done for this round.
  void end_round(TimePoint now);
  // "updated_at=... id=..." of a watermark, for messages.
  std::string describe(const Watermark& w) const;

  config::PollTable cfg;
  std::string qualified, sql_name;
  std::filesystem::path file;
  Loaded loaded;  // the state file as read at start
  bool state_checked = false;
  std::vector<std::string> needed;  // columns the rules read
  std::set<std::string> warned;     // needed columns the table lacks, reported
  Plan plan;                        // from the catalog
  std::unique_ptr<TableInfo> info = std::make_unique<TableInfo>();
  std::vector<int> cur_idx;  // select-list index of each cursor column
  int id_idx = -1;
  // Progress.
  Watermark wm;         // where reading has got to (ahead of what is confirmed)
  Watermark committed;  // as of the last transaction handed to the sink
  Watermark confirmed;  // as persisted
  bool have_state = false;
  bool widen_once = false;
  bool deletes_seen = false;
  std::optional<std::string> threshold;  // TimeId: ids above it are inserts
  std::vector<std::string> round_cursor, page_after;
  std::deque<std::pair<TimePoint, std::vector<std::string>>> history;  // Id: cursor by time
  Seen seen;

 private:
  void row_event(const char* id, PageOutput& out, PollCounters& counters);
  RowImage new_img_, old_img_;
};

}  // namespace pgbust::poll
