-- State summary (a FastAPI + async SQLAlchemy service): one page summarizes the plant's
-- state. The "core" section comes from a dozen slowly changing tables; the "progress"
-- section from a stream of progress events.
CREATE TABLE IF NOT EXISTS sites     (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS areas     (id serial PRIMARY KEY, site_id int NOT NULL REFERENCES sites, name text NOT NULL);
CREATE TABLE IF NOT EXISTS lines     (id serial PRIMARY KEY, area_id int NOT NULL REFERENCES areas, name text NOT NULL);
CREATE TABLE IF NOT EXISTS machines  (id serial PRIMARY KEY, line_id int NOT NULL REFERENCES lines, name text NOT NULL,
                                      status text NOT NULL DEFAULT 'idle',
                                      last_heartbeat_at timestamptz);  -- written every few seconds
CREATE TABLE IF NOT EXISTS products  (id serial PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL);
CREATE TABLE IF NOT EXISTS recipes   (id serial PRIMARY KEY, product_id int NOT NULL REFERENCES products, version int NOT NULL);
CREATE TABLE IF NOT EXISTS suppliers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS materials (id serial PRIMARY KEY, supplier_id int REFERENCES suppliers, name text NOT NULL, stock numeric NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS operators (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE IF NOT EXISTS shifts    (id serial PRIMARY KEY, name text NOT NULL, starts_at time NOT NULL, ends_at time NOT NULL);
CREATE TABLE IF NOT EXISTS shift_assignments (
    shift_id int NOT NULL REFERENCES shifts, operator_id int NOT NULL REFERENCES operators,
    line_id int NOT NULL REFERENCES lines, day date NOT NULL,
    PRIMARY KEY (shift_id, operator_id, day));
CREATE TABLE IF NOT EXISTS work_orders (
    id serial PRIMARY KEY, recipe_id int NOT NULL REFERENCES recipes, line_id int REFERENCES lines,
    quantity int NOT NULL, status text NOT NULL DEFAULT 'planned', updated_at timestamptz NOT NULL DEFAULT now());

-- The fast-changing part: appended by the machines as work orders advance.
CREATE TABLE IF NOT EXISTS progress_events (
    id bigserial PRIMARY KEY, work_order_id int NOT NULL REFERENCES work_orders,
    done_quantity int NOT NULL, at timestamptz NOT NULL DEFAULT now());
