#!/usr/bin/env bash
# pgbust quickstart: a throwaway PostgreSQL and Redis on free loopback ports, the work-order
# example rules, a small live workload, and the invalidations and status log on screen.
# Stops everything it started on exit (also on Ctrl-C). Nothing is left behind.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

bold=$'\e[1m'; dim=$'\e[2m'; reset=$'\e[0m'
[ -t 1 ] || { bold=""; dim=""; reset=""; }
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }

say "Installing what pgbust needs (Debian packages) and building it"
./tests/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target pgbust >/dev/null
pgbust="$top/build/pgbust"
pgbin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$pgbin/initdb" ] || pgbin=/usr/lib/postgresql/15/bin

work=$(mktemp -d /tmp/pgbust-quickstart.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

# PostgreSQL refuses to run as root: run it as the postgres user then.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_port=$(free_port)
redis_port=$(free_port)
say "Starting PostgreSQL 15 (wal_level=logical) on 127.0.0.1:$pg_port and Redis on 127.0.0.1:$redis_port"
mkdir -p "$work/pg"
[ "$(id -u)" -ne 0 ] || chown postgres: "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
as_pg "$pgbin/postgres" -D "$work/pg" -c listen_addresses=127.0.0.1 -c port="$pg_port" \
  -c unix_socket_directories="$work/pg" -c wal_level=logical -c fsync=off \
  >"$work/postgres.log" 2>&1 &
pids+=($!)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do
  "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres "$@"; }
rcli() { redis-cli -p "$redis_port" "$@"; }

say "Loading the example schema (examples/work-orders/schema.sql) and the publication"
psql -f examples/work-orders/schema.sql
psql -c "CREATE PUBLICATION pgbust FOR TABLE work_order_task"

cat >"$work/pgbust.yaml" <<YAML
postgres: {conninfo: "host=127.0.0.1 port=$pg_port dbname=postgres user=postgres"}
sources:
  logical: {slot: pgbust, publication: pgbust, create_slot: true}
redis: {url: "redis://127.0.0.1:$redis_port/0", key_prefix: ":1:"}
rules: $top/examples/work-orders/rules.yaml
status: {interval: 5s, listen: ""}
YAML

say "The rules (examples/work-orders/rules.yaml), checked by 'pgbust check':"
"$pgbust" check --rules examples/work-orders/rules.yaml || true

say "What would moving task 1 from department 10 to 20 invalidate? ('pgbust explain')"
"$pgbust" explain --rules examples/work-orders/rules.yaml --key-prefix ':1:' \
  --table public.work_order_task --op update \
  --old '{"id": 1, "assigned_department_id": 10, "assigned_operator_id": 7}' \
  --new '{"id": 1, "assigned_department_id": 20, "assigned_operator_id": 7}' || true

say "Starting pgbust (its log is indented; Redis commands it sends are shown as 'redis>')"
"$pgbust" run --config "$work/pgbust.yaml" >"$work/pgbust.log" 2>&1 &
pids+=($!)
tail -n +1 -f "$work/pgbust.log" > >(sed -u 's/^/    pgbust | /') &
pids+=($!)
redis-cli -p "$redis_port" monitor > >(sed -u -n -E '/"(UNLINK|SCAN|INCR|PUBLISH)"/{s/^[0-9.]+ \[[^]]*\] /    redis> /;p}') 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do grep -q streaming "$work/pgbust.log" && break; sleep 0.1; done

cache() {  # what the Django app would have cached
  rcli mset ":1:task_stats:10" '{"open": 3}' ":1:task_stats:20" '{"open": 5}' \
    ":1:dept_workload:10" 42 ":1:dept_workload:20" 17 ":1:operator_stats:7" x \
    ":1:dashboard:overview" x ":1:dashboard:week" x >/dev/null
}
show() {
  printf '%s    cached keys now: %s%s\n' "$dim" "$(rcli --raw keys ':1:*' | sort | tr '\n' ' ')" "$reset"
}
step() {
  say "$1"
  printf '    sql> %s\n' "$2"
  psql -c "$2" >/dev/null
  sleep 1
  show
}

cache; show
step "A new task in department 10" \
  "INSERT INTO work_order_task (title, assigned_department_id, assigned_operator_id) VALUES ('Inspect pump', 10, 7)"
cache
step "Moving it to department 20: both departments' stats go (the ORM signal only saw 20)" \
  "UPDATE work_order_task SET assigned_department_id = 20 WHERE id = 1"
cache
step "A bulk UPDATE no post_save signal ever sees" \
  "UPDATE work_order_task SET status = 'done' WHERE assigned_department_id = 20"
cache
step "A transaction that rolls back invalidates nothing" \
  "BEGIN; DELETE FROM work_order_task; ROLLBACK"
step "Deleting the task" \
  "DELETE FROM work_order_task WHERE id = 1"

say "Waiting for the next status line (every 5s)..."
sleep 5
say "Done. Everything started here is stopped and removed on exit."
