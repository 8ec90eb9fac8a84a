-- Historical dataset cache (a Flask + pandas service): analysts query facts tables by
-- resource, date range and shift; the service caches each query's DataFrame as a parquet
-- blob in Redis (L2) and in a per-process dictionary (L1).

-- Dimension: joined into both datasets for names and areas.
CREATE TABLE IF NOT EXISTS resources (
    id   serial PRIMARY KEY,
    name text NOT NULL,
    area text NOT NULL
);

-- Facts: every hold and release of a resource.
CREATE TABLE IF NOT EXISTS hold_release_history (
    id          bigserial PRIMARY KEY,
    resource_id integer NOT NULL REFERENCES resources (id),
    event       text NOT NULL CHECK (event IN ('hold', 'release')),
    reason      text,
    at          timestamptz NOT NULL DEFAULT now()
);

-- Facts: minutes per status per resource and shift, written by a nightly aggregation.
CREATE TABLE IF NOT EXISTS resource_status_by_shift (
    resource_id integer NOT NULL REFERENCES resources (id),
    shift_date  date NOT NULL,
    shift       char(1) NOT NULL CHECK (shift IN ('A', 'B', 'C')),
    status      text NOT NULL,
    minutes     integer NOT NULL,
    PRIMARY KEY (resource_id, shift_date, shift, status)
);

-- Shift times: each worker keeps them in its L1 only (no Redis key), to label rows.
CREATE TABLE IF NOT EXISTS shift_definitions (
    code      char(1) PRIMARY KEY,
    starts_at time NOT NULL,
    ends_at   time NOT NULL
);
-- No REPLICA IDENTITY change: no rule reads a row value, only table names.
