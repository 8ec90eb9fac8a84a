// examples/workload-heatmap: the FastAPI team workload heatmap (JSON values, 1 hour TTL).
// Its own schema, rules and config through the real daemon (logical source): tasks created,
// moved to another assignee and week, re-estimated in bulk, users changing department and
// capacity, a TRUNCATE; after each step every heatmap and per-user key the service reads is
// checked, gone or still cached.
#include <doctest/doctest.h>

#include "example.hpp"

using namespace pgbust::test;

namespace {

// Mondays: the week_start of any date in that week.
const char* W1 = "2024-03-04";
const char* W2 = "2024-03-11";
const char* W3 = "2024-03-18";

// Users: 1 and 2 in department 1, 3 in department 10 (dept 1 must not match dept 10), 4 in 2.
struct Heatmap {
  Example ex{"workload-heatmap"};
  AppKeys keys{ex};

  Heatmap() {
    ex.check_shipped();
    ex.load_schema();
    ex.pg.exec(
        "INSERT INTO users (id, name, department_id, capacity_hours) VALUES "
        "(1, 'Ann', 1, 40), (2, 'Bob', 1, 32), (3, 'Cho', 10, 40), (4, 'Dee', 2, 20)");
    ex.derive_config();
    ex.setup();
    ex.check_db();
    ex.start();
    for (const char* w : {W1, W2, W3}) {
      keys.all = concat(keys.all, heatmaps(w));
      for (int u = 1; u <= 4; ++u) keys.all.push_back(user(u, w));
    }
    keys.value = R"({"week_start": "2024-03-04", "rows": [{"user_id": 1, "load": [0.5, 1.2]}]})";
    keys.ttl_seconds = 3600;
  }

  // The heatmap variants the service caches for a week: everyone, per department, chosen
  // users (sorted, comma-joined ids), and both filters.
  static std::vector<std::string> heatmaps(const std::string& w) {
    std::string h = "workload:heatmap:" + w;
    return {h,
            h + ":dept:1",
            h + ":dept:10",
            h + ":dept:2",
            h + ":users:1,3",
            h + ":users:2,4",
            h + ":dept:1:users:1,2",
            h + ":dept:10:users:3"};
  }
  // Every heatmap filtered by department d, in every week.
  static std::vector<std::string> dept(int d) {
    std::string tag = ":dept:" + std::to_string(d);
    std::vector<std::string> out;
    for (const char* w : {W1, W2, W3})
      for (const auto& k : heatmaps(w))
        if (k.ends_with(tag) || k.find(tag + ":") != std::string::npos) out.push_back(k);
    return out;
  }
  static std::string user(int u, const std::string& w) {
    return "workload:user:" + std::to_string(u) + ":" + w;
  }
};

}  // namespace

TEST_CASE("workload-heatmap: every heatmap and per-user key, through tasks and users changing") {
  Heatmap h;
  auto& ex = h.ex;
  auto& keys = h.keys;
  INFO(ex.logs());
  using H = Heatmap;

  // A task for Ann due Wednesday of week 1: that week's heatmaps (all variants) and her week.
  keys.cache();
  ex.commit(
      "INSERT INTO tasks (id, title, assignee_id, due_date, original_estimate) "
      "VALUES (1, 'Spec', 1, '2024-03-06', 6)");
  keys.expect_gone(concat(H::heatmaps(W1), {H::user(1, W1)}));

  // Reassigned to Cho and pushed to Sunday 2024-03-17 (week 2): both weeks' heatmaps, Ann's
  // week 1 and Cho's week 2; not Ann's week 2 nor Cho's week 1.
  keys.cache();
  ex.commit("UPDATE tasks SET assignee_id = 3, due_date = '2024-03-17' WHERE id = 1");
  keys.expect_gone(
      concat(concat(H::heatmaps(W1), H::heatmaps(W2)), {H::user(1, W1), H::user(3, W2)}));

  // A new title changes no load.
  keys.cache();
  ex.commit("UPDATE tasks SET title = 'Spec v2' WHERE id = 1");
  keys.expect_gone({});

  // Moved within the same week: only that week.
  keys.cache();
  ex.commit("UPDATE tasks SET due_date = '2024-03-12' WHERE id = 1");
  keys.expect_gone(concat(H::heatmaps(W2), {H::user(3, W2)}));

  // Bulk: close everything due before week 3 (one statement, several users and weeks).
  ex.commit(
      "INSERT INTO tasks (id, title, assignee_id, due_date, original_estimate) VALUES "
      "(2, 'Review', 2, '2024-03-18', 3), (3, 'Deploy', 4, '2024-03-05', 2)");
  keys.cache();
  ex.commit("UPDATE tasks SET status = 'done' WHERE due_date < '2024-03-18'");
  keys.expect_gone(
      concat(concat(H::heatmaps(W1), H::heatmaps(W2)), {H::user(3, W2), H::user(4, W1)}));

  // Bob moves from department 1 to 10: the heatmaps filtered by either department, every
  // week; nothing else (not department 2, not the unfiltered or users-filtered ones).
  keys.cache();
  ex.commit("UPDATE users SET department_id = 10 WHERE id = 2");
  keys.expect_gone(concat(H::dept(1), H::dept(10)));

  // Dee's capacity changes: every heatmap (she is on the unfiltered ones of every week) and
  // all of her weeks; the other users' weeks stay.
  keys.cache();
  ex.commit("UPDATE users SET capacity_hours = 24 WHERE id = 4");
  std::vector<std::string> all_heatmaps;
  for (const char* w : {W1, W2, W3}) all_heatmaps = concat(all_heatmaps, H::heatmaps(w));
  keys.expect_gone(concat(all_heatmaps, {H::user(4, W1), H::user(4, W2), H::user(4, W3)}));

  // A task without a due date is in no week: nothing. Giving it one: that week.
  keys.cache();
  ex.commit("INSERT INTO tasks (id, title, assignee_id) VALUES (4, 'Someday', 1)");
  keys.expect_gone({});
  ex.commit("UPDATE tasks SET due_date = '2024-03-24' WHERE id = 4");
  keys.expect_gone(concat(H::heatmaps(W3), {H::user(1, W3)}));

  // Deleting Bob's review: week 3 and Bob's week 3.
  keys.cache();
  ex.commit("DELETE FROM tasks WHERE id = 2");
  keys.expect_gone(concat(H::heatmaps(W3), {H::user(2, W3)}));

  // TRUNCATE: no rows to read, so the task rule widens to every week and user.
  keys.cache();
  ex.commit("TRUNCATE tasks");
  keys.expect_gone(keys.all);
}
