#!/usr/bin/env bash
# test/bench/signups.sh: queued schema sign-ups through the customers trigger
# against the raw limit, i.e. one psql session creating the same schemas
# with the same DDL.
#
# Builds and installs the tree as a fresh machine would, starts a throwaway
# cluster as the unprivileged user (tenant_mgr preloaded, control database
# bench_tm) and measures, in the same run and on the fixture migrations
# 001..010 (test/fixtures):
#   raw      one psql session: N schemas, each with 001..010, one
#            transaction per schema; timed in two halves, one before and
#            one after the sign-ups, so that the machine's drift during the
#            run weighs on both sides alike
#   signups  one committed INSERT ... SELECT of N rows into a customers
#            table with the trigger in mode=queued, then tenant_wait() on
#            every tenant: from the INSERT to the last tenant ready, in the
#            same psql session.  Job workers (tenant_mgr.max_workers) build
#            the tenants after the commit.
# Goal: signups <= 0.8x raw.  Then checks that every tenant is ready at
# version 10 with the content of 010, that every job is done and that
# tenant_mgr.verify() finds nothing.  Slowness is reported, never failed; a
# functional error exits non-zero.
#
# Usage: sudo test/bench/signups.sh
#   BENCH_SIGNUPS=N     tenants (default 2000)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$ROOT/test/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/test/bench/lib.sh"

N=${BENCH_SIGNUPS:-2000}
GOAL=0.8
WARMUP=5
RAW_DB=bench_raw
TM_DB=bench_tm

positive_int BENCH_SIGNUPS "$N"

TREE=
WORK=
trap_exit 'bench_cleanup signups'

bench_prepare

bench_cluster \
	"max_worker_processes = 16" \
	"shared_preload_libraries = 'tenant_mgr'" \
	"tenant_mgr.database = '$TM_DB'"

say "preparing databases $RAW_DB and $TM_DB"
sql postgres -c "CREATE DATABASE $RAW_DB" -c "CREATE DATABASE $TM_DB"
sql "$TM_DB" -c 'CREATE EXTENSION tenant_mgr'
register_sql "${CREATE_MIGRATIONS[@]}" | write_sql register_create.sql
sql "$TM_DB" -f "$WORK/register_create.sql" >/dev/null
expect "registered migrations" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.migration')" 10
MAX_WORKERS=$(sql_value "$TM_DB" 'SHOW tenant_mgr.max_workers')
write_sql tables.sql <<'EOF'
CREATE TABLE customers (id serial PRIMARY KEY, slug text UNIQUE, plan text);
CREATE TRIGGER provision
  AFTER INSERT OR UPDATE OF slug OR DELETE ON customers
  FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug', 'mode=queued');
EOF
sql "$TM_DB" -f "$WORK/tables.sql"

say "warming up ($WARMUP tenants each side)"
raw_create_sql raw_warm_ 1 "$WARMUP" | write_sql warm_raw.sql
sql "$RAW_DB" -f "$WORK/warm_raw.sql" >/dev/null
write_sql warm_tm.sql <<EOF
INSERT INTO customers (slug) SELECT 'warm' || g FROM generate_series(1, $WARMUP) g;
SELECT count(*) FILTER (WHERE tenant_mgr.tenant_wait('warm' || g, '5 minutes'))
  FROM generate_series(1, $WARMUP) g;
EOF
expect "warm-up tenants ready" "$(sql "$TM_DB" -tA -f "$WORK/warm_tm.sql")" "$WARMUP"

HALF=$((N / 2))
say "raw, first half: $HALF schemas with 001..010 in one psql session"
raw_create_sql raw_ 1 "$HALF" | write_sql create_raw_1.sql
raw_create_sql raw_ $((HALF + 1)) "$N" | write_sql create_raw_2.sql
checkpoint
timed_sql "$RAW_DB" -f "$WORK/create_raw_1.sql"
RAW_US=$ELAPSED_US

say "signups: one INSERT of $N customers (mode=queued), until every tenant is ready"
write_sql signups.sql <<EOF
INSERT INTO customers (slug) SELECT 'c' || g FROM generate_series(1, $N) g;
SELECT count(*) FILTER (WHERE tenant_mgr.tenant_wait('c' || g, '60 minutes'))
  FROM generate_series(1, $N) g;
EOF
checkpoint
LOAD_BEFORE=$(cut -d ' ' -f 1 /proc/loadavg)
timed_sql "$TM_DB" -f "$WORK/signups.sql"
TM_US=$ELAPSED_US
LOAD_AFTER=$(cut -d ' ' -f 1 /proc/loadavg)
expect "tenants whose job succeeded" "$(cat "$WORK/last.out")" "$N"

say "raw, second half: $((N - HALF)) schemas"
checkpoint
timed_sql "$RAW_DB" -f "$WORK/create_raw_2.sql"
RAW_US=$((RAW_US + ELAPSED_US))
expect "raw schemas" "$(sql_value "$RAW_DB" "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'raw\\_%'")" "$((N + WARMUP))"

say "checking the tenants"
expect "tenants ready at version 10" "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenants
	WHERE name ~ '^c[0-9]+\$' AND state = 'ready' AND version = 10")" "$N"
expect "tenant schemas" "$(sql_value "$TM_DB" "SELECT count(*) FROM pg_namespace WHERE nspname ~ '^tenant_c[0-9]+\$'")" "$N"
expect "tenant schemas with the settings of 010" "$(sql_value "$TM_DB" \
	"SELECT count(*) FROM generate_series(1, $N) g,
	   LATERAL (SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.settings', 'tenant_c' || g), false, true, '')))[1]::text::int AS c) x
	 WHERE x.c = 2")" "$N"
expect "jobs not done" "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.job WHERE state <> 'done'")" 0
expect "problems found by tenant_mgr.verify()" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.verify()')" 0
# how many jobs ran at once, at the most: from the jobs' own start and end
PARALLEL=$(sql_value "$TM_DB" "SELECT max(n) FROM (SELECT sum(d) OVER (ORDER BY t, d ROWS UNBOUNDED PRECEDING) AS n
	FROM (SELECT started_at AS t, 1 AS d FROM tenant_mgr.job WHERE tenant ~ '^c[0-9]+\$'
	      UNION ALL SELECT finished_at, -1 FROM tenant_mgr.job WHERE tenant ~ '^c[0-9]+\$') e) s")

PG_VERSION=$(sql_value postgres 'SHOW server_version')
awk -v n="$N" -v pgv="$PG_VERSION" -v raw="$RAW_US" -v tm="$TM_US" -v goal="$GOAL" \
	-v workers="$MAX_WORKERS" -v par="$PARALLEL" \
	-v cpus="$(nproc)" -v load0="$LOAD_BEFORE" -v load1="$LOAD_AFTER" '
BEGIN {
	ratio = sprintf("%.2f", tm / raw)
	printf "\nsignups benchmark: PostgreSQL %s, %d CPUs, tenant_mgr.max_workers = %d\n", pgv, cpus, workers
	printf "  raw       one psql session, %d schemas with 001..010  %9.3f s  %7.2f ms/tenant\n", n, raw / 1e6, raw / 1e3 / n
	printf "  signups   one INSERT of %d customers, until all ready  %9.3f s  %7.2f ms/tenant\n", n, tm / 1e6, tm / 1e3 / n
	printf "  ratio     %sx raw (goal <= %.1fx): %s\n", ratio, goal, ratio + 0 <= goal ? "met" : "MISSED"
	printf "  jobs at once, at the most: %d\n", par
	printf "  load average %s before, %s after the timed run\n", load0, load1
}'
