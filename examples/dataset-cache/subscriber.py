"""Per-process (L1) dataset cache that drops entries when pgbust says their table changed.

pgbust deletes the Redis (L2) blobs itself; what it cannot reach is the dictionary each
worker process keeps in memory. For that it PUBLISHes one JSON message per committed
transaction on the channel the rules name (`publish: dataset-invalidation`):

    {"source": "logical", "position": "0/1A2B3C8",
     "tables": ["public.hold_release_history"],
     "keys": [], "patterns": ["dataset:hold_release_history:*"], "revisions": [],
     "truncated": false}

Each worker runs `start_subscriber()` once; a daemon thread SUBSCRIBEs and drops the L1
entries built from any table a message names (each entry records the tables its query
read). Pub/sub is fire-and-forget, so whenever the subscription is (re)established the whole
L1 is cleared: a message sent while the worker was not subscribed would otherwise be lost.

The rules also add each message to the stream `dataset-invalidation` (`stream:`, one entry
per transaction, trimmed to about redis.stream_maxlen entries). `start_stream_reader()`
follows it with XREAD from the last ID it handled, so a worker whose connection dropped
catches up on what it missed instead of clearing its L1; it clears only at start and when
the entries after its ID may have been trimmed away.

Use in a Flask app (redis-py, pandas):

    cache = L1Cache(ttl_seconds=900)
    start_subscriber(app.config["CACHE_REDIS_URL"], cache)
    ...
    tables = {"hold_release_history", "resources"}   # what the query reads
    gen = cache.generation(tables)                   # before reading Redis or the database
    df = cache.get(l2_key)
    if df is None:
        df = load_from_redis_or_database(l2_key, query)
        cache.put(l2_key, df, tables, gen)           # ignored if a table changed meanwhile

Without redis-py, to watch what a worker would drop:

    redis-cli --raw SUBSCRIBE dataset-invalidation | python3 subscriber.py --stdin
    redis-cli --raw XRANGE dataset-invalidation - + | python3 subscriber.py --stdin
"""

import json
import sys
import threading
import time

CHANNEL = "dataset-invalidation"
STREAM = "dataset-invalidation"  # a key: the same name as the channel does not clash


def tables_in(message):
    """The unqualified table names a pgbust message lists ("public.x" -> "x")."""
    if isinstance(message, bytes):
        message = message.decode("utf-8")
    names = set()
    for qualified in json.loads(message).get("tables", []):
        schema, _, table = qualified.partition(".")
        names.add(table if table and schema == "public" else qualified)
    return names


class L1Cache:
    """key -> (value, tables it was built from, expires_at), with a generation per table.

    A request notes generation(tables) before it reads Redis or the database; put() refuses
    the value if a message for one of those tables arrived in between (the value may predate
    the change: the stale-set race, in process).
    """

    def __init__(self, ttl_seconds=900):
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._entries = {}
        self._generations = {}
        self._epoch = 0  # bumped by clear(): every generation noted before is stale

    def generation(self, tables):
        with self._lock:
            return (self._epoch,) + tuple(self._generations.get(t, 0) for t in sorted(tables))

    def get(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[2] < time.monotonic():
                del self._entries[key]
                return None
            return entry[0]

    def put(self, key, value, tables, generation):
        tables = frozenset(tables)
        with self._lock:
            now = (self._epoch,) + tuple(self._generations.get(t, 0) for t in sorted(tables))
            if generation != now:
                return False
            self._entries[key] = (value, tables, time.monotonic() + self._ttl)
            return True

    def drop_tables(self, tables):
        """Drops every entry built from one of these tables; returns how many."""
        with self._lock:
            for table in tables:
                self._generations[table] = self._generations.get(table, 0) + 1
            gone = [k for k, e in self._entries.items() if e[1] & tables]
            for k in gone:
                del self._entries[k]
            return len(gone)

    def clear(self):
        with self._lock:
            self._epoch += 1
            self._entries.clear()

    def keys(self):
        with self._lock:
            return sorted(self._entries)


def subscribe_forever(redis_url, cache, channel=CHANNEL, log=print):
    """Keeps a subscription open (reconnecting), dropping L1 entries per message."""
    import redis  # redis-py; imported here so --stdin works without it

    while True:
        try:
            client = redis.Redis.from_url(redis_url, health_check_interval=30)
            pubsub = client.pubsub()
            pubsub.subscribe(channel)
            for item in pubsub.listen():
                if item["type"] == "subscribe":
                    cache.clear()  # whatever was published before now is unknown
                elif item["type"] == "message":
                    tables = tables_in(item["data"])
                    dropped = cache.drop_tables(tables)
                    log(f"pgbust: {sorted(tables)} changed; dropped {dropped} L1 entries")
        except (redis.ConnectionError, redis.TimeoutError) as e:
            log(f"pgbust subscriber: {e}; reconnecting in 1s")
            time.sleep(1)


def stream_id(text):
    """An entry ID "1700000000000-3" as a comparable (ms, seq)."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def follow_stream_forever(redis_url, cache, stream=STREAM, log=print):
    """Reads the stream from the last ID handled (reconnecting), dropping L1 entries per entry.

    At start the L1 is cleared and reading begins after the newest entry. After a dropped
    connection it resumes from the last ID handled; if the oldest entry left is newer than
    that ID, entries in between may have been trimmed (MAXLEN), so the L1 is cleared.
    """
    import redis  # redis-py; imported here so --stdin works without it

    last = None
    while True:
        try:
            client = redis.Redis.from_url(redis_url, health_check_interval=30)
            if last is None:
                newest = client.xrevrange(stream, count=1)
                last = newest[0][0] if newest else b"0-0"
                cache.clear()  # whatever came before now is unknown
            else:
                oldest = client.xrange(stream, count=1)
                if oldest and stream_id(oldest[0][0]) > stream_id(last):
                    log("pgbust stream reader: entries may have been trimmed; clearing L1")
                    cache.clear()
            while True:
                for _, entries in client.xread({stream: last}, count=100, block=5000) or []:
                    for entry_id, fields in entries:
                        tables = tables_in(fields[b"message"])
                        dropped = cache.drop_tables(tables)
                        last = entry_id
                        log(f"pgbust: {sorted(tables)} changed; dropped {dropped} L1 entries")
        except (redis.ConnectionError, redis.TimeoutError) as e:
            log(f"pgbust stream reader: {e}; resuming after {last!r} in 1s")
            time.sleep(1)


def start_stream_reader(redis_url, cache, stream=STREAM):
    thread = threading.Thread(
        target=follow_stream_forever, args=(redis_url, cache, stream), daemon=True,
        name="pgbust-stream-reader")
    thread.start()
    return thread


def start_subscriber(redis_url, cache, channel=CHANNEL):
    thread = threading.Thread(
        target=subscribe_forever, args=(redis_url, cache, channel), daemon=True,
        name="pgbust-subscriber")
    thread.start()
    return thread


def _demo_cache():
    """A worker's L1 as it might look: two datasets per facts table (both join resources),
    and the shift times."""
    cache = L1Cache()
    for key, tables in [("q-holds-1", {"hold_release_history", "resources"}),
                        ("q-holds-2", {"hold_release_history", "resources"}),
                        ("q-shifts-1", {"resource_status_by_shift", "resources"}),
                        ("q-shifts-2", {"resource_status_by_shift", "resources"}),
                        ("shift-calendar", {"shift_definitions"})]:
        cache.put(key, object(), tables, cache.generation(tables))
    return cache


def main(argv):
    if argv[1:2] == ["--stdin"]:
        # Lines from `redis-cli --raw SUBSCRIBE ...` or `XRANGE/XREAD ...`: the JSON ones are
        # messages.
        cache = _demo_cache()
        for line in sys.stdin:
            line = line.strip()
            if line.startswith("{"):
                tables = tables_in(line)
                dropped = cache.drop_tables(tables)
                print(f"{','.join(sorted(tables))}: dropped {dropped}; left: "
                      f"{' '.join(cache.keys()) or '-'}", flush=True)
        return 0
    if argv[1:2] == ["--stream"] and len(argv) == 3:
        follow_stream_forever(argv[2], _demo_cache())
        return 0
    if len(argv) == 2:
        subscribe_forever(argv[1], _demo_cache())
        return 0
    print(__doc__, file=sys.stderr)
    print("usage: subscriber.py REDIS_URL | subscriber.py --stream REDIS_URL | "
          "subscriber.py --stdin", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
