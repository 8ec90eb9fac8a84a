// examples/work-orders: the Django work-order statistics app (django-redis, keys stored as
// ":1:<key>"). Its own schema, rules and config through the real daemon (logical source),
// with the cases its post_save/post_delete handlers got wrong: a task moving to another
// department or operator, a bulk .update(), a change still uncommitted, a TRUNCATE.
#include <doctest/doctest.h>

#include "example.hpp"
#include "pgbust/pg/libpq.hpp"

using namespace pgbust::test;

namespace {

struct WorkOrders {
  Example ex{"work-orders"};
  AppKeys keys{ex};

  WorkOrders() {
    ex.check_shipped();
    ex.load_schema();
    ex.derive_config();
    ex.setup();
    ex.check_db();
    ex.start();
    // Every key the statistics views read, as django-redis writes them: ":1:" + key, a
    // pickled value, the default TIMEOUT of 300 s.
    for (int d : {10, 20, 30})
      for (auto k : {"task_stats:", "dept_workload:"})
        keys.all.push_back(":1:" + (k + std::to_string(d)));
    for (int op : {7, 8, 9}) keys.all.push_back(":1:operator_stats:" + std::to_string(op));
    for (int d : {10, 20, 30}) keys.all.push_back(collab("2024-03-04", "2024-03-08", d));
    keys.all.push_back(collab("2024-03-11", "2024-03-15", 10));
    keys.all.push_back(collab("2024-03-11", "2024-03-15", 20));
    keys.all.push_back(collab("2024-03-04", "None", 30));
    keys.all = concat(keys.all, kDashboards);
    // Another cache VERSION, no prefix, another department, a look-alike: never touched
    // (only the TRUNCATE's widened pattern reaches :1:task_stats:100).
    keys.all = concat(keys.all,
                      {":2:task_stats:10", "task_stats:10", ":1:task_stats:100", ":1:dashboardx"});
    keys.value = "\x80\x05\x95pickled";
    keys.ttl_seconds = 300;
  }

  // collab_stats:{md5(f"{start}:{end}:{dept}")[:8]}, computed by PostgreSQL's own md5() so
  // the test does not trust pgbust's digest to check pgbust's digest.
  std::string collab(const std::string& start, const std::string& end, int dept) const {
    auto h = ex.pg.scalar("SELECT left(md5('" + start + ":" + end + ":" + std::to_string(dept) +
                          "'), 8)");
    REQUIRE(h);
    return ":1:collab_stats:" + *h;
  }

  // The keys of one task's row: department, operator, planning window.
  std::vector<std::string> task(int dept, int op, const std::string& start,
                                const std::string& end) const {
    return {":1:task_stats:" + std::to_string(dept), ":1:dept_workload:" + std::to_string(dept),
            ":1:operator_stats:" + std::to_string(op), collab(start, end, dept)};
  }

  static inline const std::vector<std::string> kDashboards = {
      ":1:dashboard:overview", ":1:dashboard:week:2024-10", ":1:dashboard:dept:10"};
};

}  // namespace

TEST_CASE("work-orders: every statistics key the Django views read, through every kind of write") {
  WorkOrders w;
  auto& ex = w.ex;
  auto& keys = w.keys;
  const auto& dash = WorkOrders::kDashboards;
  INFO(ex.logs());
  const std::string W1 = "'2024-03-04', '2024-03-08'", W2 = "'2024-03-11', '2024-03-15'";

  // WorkOrderTask.objects.create(...): what post_save got right.
  keys.cache();
  ex.commit(
      "INSERT INTO work_order_task (id, title, assigned_department_id, assigned_operator_id,"
      " start_date, end_date, estimated_hours) VALUES (1, 'Inspect pump', 10, 7, " +
      W1 + ", 4)");
  keys.expect_gone(concat(w.task(10, 7, "2024-03-04", "2024-03-08"), dash));

  // task.assigned_department_id = 20; task.save(): post_save saw only the new department, so
  // department 10 kept counting the task. pgbust reads the old row: both sides.
  keys.cache();
  ex.commit(
      "UPDATE work_order_task SET assigned_department_id = 20, assigned_operator_id = 8 "
      "WHERE id = 1");
  keys.expect_gone(concat(
      concat(w.task(10, 7, "2024-03-04", "2024-03-08"), w.task(20, 8, "2024-03-04", "2024-03-08")),
      dash));

  // A rename touches no statistic (changed: leaves out title): nothing is invalidated.
  ex.commit(
      "INSERT INTO work_order_task (id, title, assigned_department_id, assigned_operator_id,"
      " start_date, end_date) VALUES (2, 'Replace seal', 20, 9, " +
      W2 +
      "), (3, "
      "'Paint', 30, 9, " +
      W1 + ")");
  keys.cache();
  ex.commit("UPDATE work_order_task SET title = 'Inspect pump P-101' WHERE id = 1");
  keys.expect_gone({});

  // WorkOrderTask.objects.filter(assigned_department_id__in=[20, 30]).update(status="done"):
  // QuerySet.update() sends no signal at all; the cache stayed stale until its TTL.
  keys.cache();
  ex.commit("UPDATE work_order_task SET status = 'done' WHERE assigned_department_id IN (20, 30)");
  keys.expect_gone(concat(concat(concat(w.task(20, 8, "2024-03-04", "2024-03-08"),
                                        w.task(20, 9, "2024-03-11", "2024-03-15")),
                                 w.task(30, 9, "2024-03-04", "2024-03-08")),
                          dash));

  // Rescheduling to an open end: both planning windows; Python spells the NULL "None".
  keys.cache();
  ex.commit("UPDATE work_order_task SET end_date = NULL WHERE id = 3");
  keys.expect_gone(concat(
      concat(w.task(30, 9, "2024-03-04", "2024-03-08"), {w.collab("2024-03-04", "None", 30)}),
      dash));

  // post_save runs inside the transaction: a reader could refill the cache with the old
  // numbers before the commit, and nothing would delete them again. pgbust acts on commit.
  keys.cache();
  {
    auto conn = pgbust::pg::connect(ex.pg.conninfo());
    pgbust::pg::exec(conn.get(), "BEGIN", "begin");
    pgbust::pg::exec(conn.get(), "UPDATE work_order_task SET status = 'in_progress' WHERE id = 1",
                     "update");
    ex.sync();  // a later commit from another session is applied; this one is not committed
    keys.expect_gone({});
    pgbust::pg::exec(conn.get(), "COMMIT", "commit");
  }
  ex.sync();
  keys.expect_gone(concat(w.task(20, 8, "2024-03-04", "2024-03-08"), dash));

  // A transaction that rolls back invalidates nothing.
  keys.cache();
  ex.commit(
      "BEGIN; DELETE FROM work_order_task; UPDATE work_order_task SET status = 'x'; "
      "ROLLBACK");
  keys.expect_gone({});

  // task.delete(): the old row's keys.
  keys.cache();
  ex.commit("DELETE FROM work_order_task WHERE id = 1");
  keys.expect_gone(concat(w.task(20, 8, "2024-03-04", "2024-03-08"), dash));

  // A nightly job truncates the table: no row values at all, so every key of the rule widens
  // to a pattern: all of this app's statistics, none of another cache version's.
  keys.cache();
  ex.commit("TRUNCATE work_order_task");
  std::vector<std::string> gone;
  for (const auto& k : keys.all)
    if (k.rfind(":1:", 0) == 0 && k != ":1:dashboardx") gone.push_back(k);
  keys.expect_gone(gone);
}
