-- Work-order statistics (a Django app): tasks assigned to departments and operators.
CREATE TABLE IF NOT EXISTS work_order_task (
    id                     serial PRIMARY KEY,
    title                  text NOT NULL,
    status                 text NOT NULL DEFAULT 'open',
    assigned_department_id integer,
    assigned_operator_id   integer,
    start_date             date,
    end_date               date
);
-- The old row is needed to invalidate the department a task moves out of.
ALTER TABLE work_order_task REPLICA IDENTITY FULL;
