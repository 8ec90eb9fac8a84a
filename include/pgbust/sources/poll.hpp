// The watermark poll source: for databases without logical replication or triggers, finds
// changed rows by an increasing id and/or updated_at column, every interval, in pages.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "pgbust/core/config.hpp"
#include "pgbust/core/source.hpp"
#include "pgbust/rules/rules.hpp"
#include "pgbust/sources/session_source.hpp"

namespace pgbust {

struct PollOptions {
  std::string conninfo;
  config::Poll poll;
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds query_timeout{60000};  // also the session's statement_timeout
  std::chrono::milliseconds backoff_min{250};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds log_interval{30000};  // repeated errors, at most once per this
  std::size_t seen_limit = 100000;                // rows remembered per table (overlap dedup)
};

struct PollCounters {
  std::uint64_t rounds = 0;           // complete rounds over every table
  std::uint64_t rows = 0;             // rows read (including overlap re-reads)
  std::uint64_t inserts = 0;          // delivered as inserts
  std::uint64_t updates = 0;          // delivered as updates (old image: key columns only)
  std::uint64_t repeats = 0;          // overlap re-reads skipped as already invalidated
  std::uint64_t deletes = 0;          // rounds where the row count showed deletes (widened)
  std::uint64_t start_widenings = 0;  // first start / unusable state: widened once
  std::uint64_t state_writes = 0;
  std::uint64_t state_errors = 0;
};

// Watermarks, per configured table (sources.poll.tables):
//   [id]             rows with an id above the last one seen are inserts
//   [updated_at]     rows with updated_at at or above the last one seen (minus the overlap)
//                    are updates; the primary key (or `key:`) orders rows with equal times
//   [updated_at, id] both: found by updated_at, an insert when its id is above every id seen
//                    before, else an update
// The type of each column comes from the catalog (integers/numerics for ids, date/time types
// for updated_at) and values go back to the server as text cast to that type, so comparisons
// are the column's own. An update's old image is the key columns (copied from the new row);
// every other old value is unknown (Unknown::Polled), so rules that need one widen.
//
// The overlap window re-reads what changed recently each round: for updated_at, rows from
// (last updated_at - overlap); for ids, from the highest id seen `overlap` ago. Commits that
// land out of order (a long transaction committing after a later one; equal timestamps in
// two commits) are found that way, and rows already invalidated with the same updated_at are
// skipped (a bounded memory; forgetting only repeats a harmless invalidation). A row whose
// updated_at is older than the window when it commits is missed: size the overlap above
// your longest write transaction. Rows with a NULL watermark column are never seen.
//
// Deletes are invisible to a watermark. With `deletes: count` each round counts the rows
// (with an id watermark, also those above the last id): fewer rows than the last count plus
// the new ones means rows were deleted, and every rule of the table widens (Unknown::Polled).
// A delete exactly offset by an out-of-order insert in the same interval is not seen; with
// an updated_at-only watermark only a net fall in the count is.
//
// Each page of rows is one transaction for the sink, positioned by a sequence number; when
// it is confirmed (applied in Redis) the table's watermark is written to
// `<state_dir>/<schema>.<table>.watermark`. A restart resumes from it. With no state file
// (first start), an unreadable or corrupt one (an error names the file and what was wrong),
// or one written for other watermark columns, polling starts from the current maximum and
// every rule of the table widens once: what changed before is unknown.
//
// Phases: connecting -> starting (session settings, catalog, initial maxima) -> streaming
// (a round every interval) -> on any failure backing off (exponential, jitter) -> again. A
// table the catalog cannot serve (missing, a watermark column of the wrong type) keeps the
// source backing off with that error in its status until it is fixed.
class PollSource final : public SessionSource {
 public:
  // Rules reloaded (rules_changed): the columns to fetch are looked up again next round.
  PollSource(PollOptions options, const rules::RuleSet& rules, ChangeSink& sink);
  ~PollSource() override;
  const PollCounters& counters() const;

 private:
  struct Impl;
};

}  // namespace pgbust
