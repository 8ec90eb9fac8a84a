-- Team workload heatmap (a FastAPI service): users belong to a department and have a weekly
-- capacity; tasks are assigned to a user, due on a date, with an estimate in hours.
CREATE TABLE IF NOT EXISTS users (
    id             serial PRIMARY KEY,
    name           text NOT NULL,
    department_id  integer,
    capacity_hours numeric(5,1) NOT NULL DEFAULT 40
);

CREATE TABLE IF NOT EXISTS tasks (
    id                serial PRIMARY KEY,
    title             text NOT NULL,
    assignee_id       integer REFERENCES users (id),
    due_date          date,
    original_estimate numeric(6,1) NOT NULL DEFAULT 0,
    status            text NOT NULL DEFAULT 'open'   -- open | done | cancelled
);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (due_date);

-- Moving a task to another assignee or week, and a user to another department, must
-- invalidate the side it left too: the old row is needed, so log all of it.
ALTER TABLE tasks REPLICA IDENTITY FULL;
ALTER TABLE users REPLICA IDENTITY FULL;
