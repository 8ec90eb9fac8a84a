// The rule language documented once (see include/pgbust/rules/reference.hpp); the unit test
// test_rules_reference.cpp fails when a key or filter is documented here but not accepted, or
// accepted but not documented.
#include "pgbust/rules/reference.hpp"

namespace pgbust::rules {

namespace {

// clang-format off
constexpr KeyDoc kKeys[] = {
  {"version", "integer", "", "The rule language version: 1 (required).", "1"},
  {"rules", "list of mappings", "", "The rules (required).", ""},
  {"rules[].name", "string", "", "A unique name, shown in logs, metrics and explain (required).",
   "task-stats"},
  {"rules[].table", "string", "", "The table: schema.table or table (schema public; required).",
   "public.work_order_task"},
  {"rules[].on", "list of: insert, update, delete, truncate", "all four",
   "The operations the rule fires on.", "[insert, update, delete]"},
  {"rules[].changed", "list of strings", "[] (any change)",
   "Updates fire only when one of these columns changed (needs update in on).",
   "[status, assigned_department_id]"},
  {"rules[].when", "string", "\"\" (always)",
   "A condition over the row (see CONDITIONS); the rule fires when it holds for the old or "
   "the new row.", "\"new.status <> 'draft'\""},
  {"rules[].delete", "list of templates", "[]", "Keys deleted exactly (UNLINK).",
   "[\"task_stats:${assigned_department_id}\"]"},
  {"rules[].delete_pattern", "list of templates", "[]",
   "Glob patterns deleted with SCAN MATCH and UNLINK; row values are glob-escaped.",
   "[\"dashboard:*\"]"},
  {"rules[].bump", "list of templates", "[]",
   "Revision counters incremented (INCR, seeded so an evicted counter never repeats a value).",
   "[\"rev:dept:${assigned_department_id}\"]"},
  {"rules[].publish", "string", "\"\" (none)",
   "A channel that gets one message per transaction listing what was invalidated.",
   "cache-invalidation"},
  {"rules[].stream", "string", "\"\" (none)",
   "A stream that gets the same message as one entry per transaction (XADD), for readers "
   "that must not miss one.",
   "cache-invalidation-log"},
  {"rules[].redelete_after", "duration", "none",
   "Delete the keys a second time after this delay, for a reader that refills the cache with "
   "a value read before the commit.", "500ms"},
  {"rules[].null_as", "string", "none (a key with a NULL value is skipped)",
   "The text the application writes for NULL in its keys (Python f-strings: \"None\").",
   "\"None\""},
  {"rules[].fallback", "mapping", "the keys widened to patterns",
   "What to invalidate instead when a key cannot be computed exactly (an unknown value).", ""},
  {"rules[].fallback.delete", "list of templates", "[]", "Keys deleted instead.",
   "[\"task_stats:all\"]"},
  {"rules[].fallback.delete_pattern", "list of templates", "[]", "Patterns deleted instead.",
   "[\"task_stats:*\"]"},
  {"rules[].fallback.bump", "list of templates", "[]", "Counters bumped instead.",
   "[\"rev:table:work_order_task\"]"},
  {"rules[].stable", "list of strings", "[]",
   "Columns the DBA asserts never change after insert: where an update's old value is not "
   "known (REPLICA IDENTITY DEFAULT or USING INDEX without the column, polling) it is taken to "
   "equal the new one, so the key stays exact instead of widening to a pattern. Deletes still "
   "widen (there is no new row). An unchecked assertion unless a BEFORE UPDATE trigger refuses "
   "the change: `check --db` says which; if such a column does change, keys built from its old "
   "value stay stale.",
   "[tenant_id, created_by]"},
  {"rules[].timezone", "string", "none (UTC)",
   "The tz database zone that date, month, week_start and tz use when they name none.",
   "Europe/Berlin"},
};

constexpr FilterDoc kFilters[] = {
  {"lower", "lower", "ASCII letters to lower case; other bytes unchanged."},
  {"upper", "upper", "ASCII letters to upper case; other bytes unchanged."},
  {"trim", "trim", "Strips ASCII spaces, tabs, CR and LF at both ends."},
  {"date", "date[:ZONE]",
   "The YYYY-MM-DD part of a date or timestamp (timestamptz values arrive in UTC, so the UTC "
   "date); with a zone (or the rule's timezone), the local date of the instant there."},
  {"month", "month[:ZONE]", "YYYY-MM of a date or timestamp, as date."},
  {"week_start", "week_start[:ZONE]",
   "The Monday on or before the date, as YYYY-MM-DD (Python: d - timedelta(days=d.weekday()))."},
  {"tz", "tz[:ZONE]",
   "A timestamptz as PostgreSQL prints it under SET TimeZone = ZONE (fractional seconds kept, "
   "offsets like +05:30)."},
  {"md5", "md5[:N]",
   "The first N (1-32, default 32) lowercase hex digits of the MD5 of the text (Python: "
   "hashlib.md5(v.encode()).hexdigest()[:N])."},
  {"sha256", "sha256[:N]",
   "The first N (1-64, default 64) lowercase hex digits of the SHA-256 of the text."},
  {"default", "default:TEXT", "A NULL value becomes TEXT; later filters apply to TEXT."},
  {"pybool", "pybool", "PostgreSQL boolean text t/f becomes True/False (Python's str(bool))."},
};

constexpr Prose kTemplates[] = {
  {false, "A key template is text with placeholders. `${col}` renders the column from each "
          "row image the change has: the new row for an insert, the old row for a delete, "
          "both for an update (deduplicated), so a row that moves invalidates both groups. "
          "`${new.col}` and `${old.col}` pick one image; `${\"Col\"}` names a quoted column "
          "(unquoted names fold to lower case). `${table}`, `${schema}` and `${op}` are the "
          "change's metadata."},
  {false, "Filters apply left to right: `${col|f1|f2:arg}`. A group renders a sub-template to "
          "one text and applies its filters to the whole: `${(${start}:${end})|md5:8}`. `$$` "
          "is a literal `$`."},
  {false, "Values are PostgreSQL's text output under TimeZone=UTC, DateStyle=ISO, "
          "IntervalStyle=postgres, extra_float_digits=1 and bytea_output=hex, whatever the "
          "server or writer has set. A NULL value skips the key (unless null_as says how the "
          "application spells it). A value that cannot be known (an old value not in the WAL, "
          "an unchanged TOAST value, TRUNCATE, a NOTIFY gap, a polled delete) widens the key: "
          "its placeholder becomes `*` in a pattern delete, or the rule's fallback applies; "
          "every widening is counted."},
  {true, "version: 1\n"
         "rules:\n"
         "  - name: task-stats\n"
         "    table: public.work_order_task\n"
         "    changed: [status, assigned_department_id]\n"
         "    when: \"new.status <> 'draft'\"\n"
         "    delete: [\"task_stats:${assigned_department_id}\"]\n"
         "    delete_pattern: [\"dashboard:*\"]\n"
         "    bump: [\"rev:dept:${assigned_department_id}\"]\n"
         "    publish: cache-invalidation"},
};

constexpr Prose kConditions[] = {
  {false, "`when` is an SQL-like boolean expression: comparisons (`=`, `<>`, `!=`, `<`, `<=`, "
          "`>`, `>=`), `[NOT] IN (...)`, `IS [NOT] NULL`, `IS [NOT] TRUE`, `IS [NOT] FALSE`, "
          "`AND`, `OR`, `NOT` and parentheses (keywords in any case), over columns (`col`, "
          "`new.col`, `old.col`), 'text' literals ('' is a quote), numbers, TRUE, FALSE and "
          "NULL. A bare boolean column is a predicate."},
  {false, "Two sides that both read as numbers compare numerically; against TRUE/FALSE a value "
          "reads as a PostgreSQL boolean; otherwise texts compare byte-wise. NULL follows SQL "
          "three-valued logic and the rule fires only when the condition is TRUE. An "
          "unqualified column reads the event's row; for an update the condition is evaluated "
          "on the old and on the new row and holds if either holds. A value that is not known "
          "may be anything: the condition holds if it could be TRUE, so a rule never "
          "under-fires."},
};
// clang-format on

}  // namespace

std::span<const KeyDoc> keys() {
  return kKeys;
}
std::span<const FilterDoc> filters() {
  return kFilters;
}
std::span<const Prose> templates_prose() {
  return kTemplates;
}
std::span<const Prose> conditions_prose() {
  return kConditions;
}

}  // namespace pgbust::rules
