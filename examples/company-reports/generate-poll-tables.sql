-- Prints the sources.poll.tables entries of pgbust.yaml for every company schema. Re-run it
-- when a company is added, paste the output into pgbust.yaml and restart pgbust:
--   psql -XAtq -f generate-poll-tables.sql
SELECT string_agg(format('      - {table: %s.act, watermark: [id_act], overlap: 30s, deletes: count}'
                         || E'\n', n.nspname),
                  '' ORDER BY substr(n.nspname, 9)::bigint)
FROM pg_catalog.pg_namespace n
JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = 'act' AND c.relkind = 'r'
WHERE n.nspname ~ '^company_[0-9]+$';
