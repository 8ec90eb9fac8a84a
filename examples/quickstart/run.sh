#!/usr/bin/env bash
# pgbust quickstart: a throwaway PostgreSQL and Redis on free loopback ports, the work-order
# example (examples/work-orders: a Django app's statistics cache), a small live workload, and
# the invalidations and status log on screen. Stops everything it started on exit (also on
# Ctrl-C). Nothing is left behind. PGBUST_BUILD_DIR picks the build directory (default build).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

bold=$'\e[1m'; dim=$'\e[2m'; reset=$'\e[0m'
[ -t 1 ] || { bold=""; dim=""; reset=""; }
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }

say "Installing what pgbust needs (Debian packages) and building it"
./tests/deps.sh
build=${PGBUST_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target pgbust >/dev/null
pgbust=$(cd "$build" && pwd)/pgbust
pgbin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
[ -x "$pgbin/initdb" ] || pgbin=/usr/lib/postgresql/15/bin

work=$(mktemp -d /tmp/pgbust-quickstart.XXXXXX)
chmod 755 "$work"
pids=()
stop_pid() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  set +e
  # Newest first, each one gone before the next: pgbust drains while PostgreSQL and Redis
  # are still up.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[$i]}"; done
  # PostgreSQL last: a fast shutdown of the postmaster named in its pid file (also when a
  # Ctrl-C already reached it), then wait until it has removed that file.
  local pidfile="$work/pg/postmaster.pid"
  if [ -s "$pidfile" ]; then
    kill -INT "$(head -n 1 "$pidfile")" 2>/dev/null
    for _ in $(seq 100); do [ -e "$pidfile" ] || break; sleep 0.1; done
  fi
  [ -z "${pg_runner:-}" ] || stop_pid "$pg_runner"
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
# `exec`, so a backgrounded call's $! is the server (or runuser, which passes SIGTERM on),
# not a subshell whose death would leave the server running.
as_pg() { if [ "$(id -u)" -eq 0 ]; then exec runuser -u postgres -- "$@"; else exec "$@"; fi; }

pg_port=$(free_port)
redis_port=$(free_port)
say "Starting PostgreSQL 15 (wal_level=logical) on 127.0.0.1:$pg_port and Redis on 127.0.0.1:$redis_port"
mkdir -p "$work/pg"
[ "$(id -u)" -ne 0 ] || chown postgres: "$work/pg"
(as_pg "$pgbin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null)
as_pg "$pgbin/postgres" -D "$work/pg" -c listen_addresses=127.0.0.1 -c port="$pg_port" \
  -c unix_socket_directories="$work/pg" -c wal_level=logical -c fsync=off \
  >"$work/postgres.log" 2>&1 &
pg_runner=$!
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do
  "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres "$@"; }
rcli() { redis-cli -p "$redis_port" "$@"; }

say "Loading the example schema (examples/work-orders/schema.sql)"
psql -f examples/work-orders/schema.sql

cat >"$work/pgbust.yaml" <<YAML
# examples/work-orders/pgbust.yaml with this machine's throwaway servers
postgres: {conninfo: "host=127.0.0.1 port=$pg_port dbname=postgres user=postgres"}
sources:
  logical: {slot: pgbust_workorders, publication: pgbust_workorders, create_slot: true, state_dir: "$work/state"}
redis: {url: "redis://127.0.0.1:$redis_port/0", key_prefix: ":1:"}
rules: $top/examples/work-orders/rules.yaml
status: {interval: 5s, listen: ""}
YAML

say "The rules (examples/work-orders/rules.yaml):"
sed -n '/^rules:/,$p' examples/work-orders/rules.yaml | sed 's/^/    /'

say "Creating the publication and slot the rules need ('pgbust setup --apply'), then 'pgbust check --db'"
"$pgbust" setup --config "$work/pgbust.yaml" --apply
"$pgbust" check --config "$work/pgbust.yaml" --db

task1='"id": 1, "status": "open", "assigned_operator_id": 7, "start_date": "2024-03-04", "end_date": "2024-03-08", "estimated_hours": 4'
say "What would moving task 1 from department 10 to 20 invalidate? ('pgbust explain')"
"$pgbust" explain --config "$work/pgbust.yaml" --table public.work_order_task --op update \
  --old "{$task1, \"assigned_department_id\": 10}" \
  --new "{$task1, \"assigned_department_id\": 20}"

say "Starting pgbust (its log is indented; Redis commands it sends are shown as 'redis>')"
"$pgbust" run --config "$work/pgbust.yaml" >"$work/pgbust.log" 2>&1 &
pgbust_pid=$!
pids+=($pgbust_pid)
tail -n +1 -f "$work/pgbust.log" > >(sed -u 's/^/    pgbust | /') &
pids+=($!)
redis-cli -p "$redis_port" monitor > >(sed -u -n -E '/"(UNLINK|SCAN|INCR|PUBLISH)"/{s/^[0-9.]+ \[[^]]*\] /    redis> /;p}') 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do grep -q "logical: streaming" "$work/pgbust.log" && break; sleep 0.1; done

# The keys the Django app would have cached (django-redis stores "key" as ":1:key").
collab() { psql -Atc "SELECT ':1:collab_stats:' || left(md5('$1:$2:$3'), 8)"; }
collab_10=$(collab 2024-03-04 2024-03-08 10)
collab_20=$(collab 2024-03-04 2024-03-08 20)
cache() {
  rcli mset ":1:task_stats:10" '{"open": 3}' ":1:task_stats:20" '{"open": 5}' \
    ":1:dept_workload:10" 42 ":1:dept_workload:20" 17 ":1:operator_stats:7" x \
    "$collab_10" x "$collab_20" x ":1:dashboard:overview" x ":1:dashboard:week" x >/dev/null
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
step "A new task in department 10 (Django: WorkOrderTask.objects.create)" \
  "INSERT INTO work_order_task (title, assigned_department_id, assigned_operator_id, start_date, end_date) VALUES ('Inspect pump', 10, 7, '2024-03-04', '2024-03-08')"
cache
step "Moving it to department 20: both departments' stats go (the post_save signal only saw 20)" \
  "UPDATE work_order_task SET assigned_department_id = 20 WHERE id = 1"
cache
step "Renaming it: no statistic reads the title ('changed:' in the rule), nothing goes" \
  "UPDATE work_order_task SET title = 'Inspect pump P-101' WHERE id = 1"
step "A bulk UPDATE (QuerySet.update()), which no post_save signal ever sees" \
  "UPDATE work_order_task SET status = 'done' WHERE assigned_department_id = 20"
cache
step "A transaction that rolls back invalidates nothing" \
  "BEGIN; DELETE FROM work_order_task; ROLLBACK"
step "Deleting the task" \
  "DELETE FROM work_order_task WHERE id = 1"

say "Waiting for the next status line (every 5s; in production every 30s and on every state change)..."
n=$(grep -c "status:" "$work/pgbust.log" || true)
for _ in $(seq 100); do [ "$(grep -c "status:" "$work/pgbust.log" || true)" -gt "$n" ] && break; sleep 0.1; done
sleep 0.2
say "Stopping pgbust with SIGTERM: it finishes what is in flight, confirms its position and exits"
kill "$pgbust_pid"
for _ in $(seq 100); do kill -0 "$pgbust_pid" 2>/dev/null || break; sleep 0.1; done
sleep 0.3
say "Done. Redis and PostgreSQL are stopped and $work removed on exit."
