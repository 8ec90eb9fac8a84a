-- Work-order statistics (a Django app, `workorders` in INSTALLED_APPS, model WorkOrderTask
-- with db_table = 'work_order_task'): tasks assigned to departments and operators, planned
-- from start_date to end_date. The statistics views cache per department, per operator,
-- per planning window (collab_stats) and a few dashboards.
CREATE TABLE IF NOT EXISTS work_order_task (
    id                     serial PRIMARY KEY,
    title                  text NOT NULL,
    status                 text NOT NULL DEFAULT 'open',   -- open | in_progress | done
    assigned_department_id integer,
    assigned_operator_id   integer,
    start_date             date,
    end_date               date,
    estimated_hours        numeric(6,1) NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS work_order_task_department ON work_order_task (assigned_department_id);

-- An UPDATE that moves a task to another department must invalidate the department it left:
-- with the default replica identity the WAL only carries the old primary key, so pgbust would
-- widen those keys to patterns (`pgbust check` says so). FULL logs the whole old row.
ALTER TABLE work_order_task REPLICA IDENTITY FULL;
