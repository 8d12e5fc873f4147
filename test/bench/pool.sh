#!/usr/bin/env bash
# test/bench/pool.sh: tenant_create from the warm pool, built in the
# caller's transaction and built outside it, against the raw limit (one psql
# session running the same DDL), in the same run.
#
# Builds and installs the tree as a fresh machine would, starts a throwaway
# cluster as the unprivileged user (tenant_mgr preloaded, control database
# bench_tm, migrations 001..010 of test/fixtures) and measures:
#   latency   N calls of tenant_create() one after another (each committed,
#             timed one by one), schema and database, claimed from a pool of
#             N spares the launcher filled beforehand (it refills meanwhile):
#             p50 and p99; goal p50 <= 3 ms, p99 <= 20 ms, and p50 at least
#             10x faster than the raw DDL of one tenant
#   outside   N schema tenants built outside the caller's transaction
#             (tenant_mgr.build_in_transaction = off: an executor, each
#             migration committed, then claimed) against N built inside it;
#             goal <= 1.3x
#   sustained 3N schema sign-ups one after another with a pool of N that the
#             launcher refills: sign-ups per second while the pool lasts and
#             after it ran dry
#   raw       N schemas with 001..010 (one transaction each), and M
#             databases (CREATE DATABASE, then 001..010 inside)
# Checks that every tenant is ready at version 10 and that verify() finds
# nothing.  Slowness is reported, never failed; a functional error exits
# non-zero.
#
# Usage: sudo test/bench/pool.sh
#   BENCH_TENANTS=N      calls per schema phase (default 200)
#   BENCH_DB_TENANTS=M   calls of the database latency phase, and raw
#                        databases (default 200 and 20)
#   BENCH_RAW_DBS=R      raw databases (default 20)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$ROOT/test/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/test/bench/lib.sh"

N=${BENCH_TENANTS:-200}
M=${BENCH_DB_TENANTS:-200}
R=${BENCH_RAW_DBS:-20}
RAW_DB=bench_raw
TM_DB=bench_tm

positive_int BENCH_TENANTS "$N"
positive_int BENCH_DB_TENANTS "$M"
positive_int BENCH_RAW_DBS "$R"

TREE=
WORK=
trap_exit 'bench_cleanup pool'

bench_prepare

bench_cluster \
	"max_worker_processes = 16" \
	"shared_preload_libraries = 'tenant_mgr'" \
	"tenant_mgr.database = '$TM_DB'" \
	"tenant_mgr.poll_interval = 1"

say "preparing databases $RAW_DB and $TM_DB"
sql postgres -c "CREATE DATABASE $RAW_DB" -c "CREATE DATABASE $TM_DB"
sql "$TM_DB" -c 'CREATE EXTENSION tenant_mgr'
register_sql "${CREATE_MIGRATIONS[@]}" | write_sql register_create.sql
sql "$TM_DB" -f "$WORK/register_create.sql" >/dev/null
expect "registered migrations" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.migration')" 10
# each call timed on its own, committed before the next
write_sql procedures.sql <<'EOF'
CREATE TABLE public.bench_call (phase text, n int, ms float8, at timestamptz);
CREATE PROCEDURE public.bench_creates(phase text, prefix text, isolation text, calls int)
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
BEGIN
  FOR i IN 1..calls LOOP
    t0 := clock_timestamp();
    PERFORM tenant_mgr.tenant_create(prefix || i, isolation);
    COMMIT;
    INSERT INTO public.bench_call
      VALUES (phase, i, extract(epoch FROM clock_timestamp() - t0) * 1000, clock_timestamp());
    COMMIT;
  END LOOP;
END $$;
EOF
sql "$TM_DB" -f "$WORK/procedures.sql"

# Sets the pool sizes and waits until the launcher has them ready.
pool() {
	sql "$TM_DB" -c "ALTER SYSTEM SET tenant_mgr.pool_schema = $1" \
		-c "ALTER SYSTEM SET tenant_mgr.pool_database = $2" -c 'SELECT pg_reload_conf()' >/dev/null
	local i
	for ((i = 0; i < 36000; i++)); do
		[ "$(sql_value "$TM_DB" "SELECT count(*) FILTER (WHERE isolation = 'schema' AND state = 'ready' AND version = latest) = $1
			AND count(*) FILTER (WHERE isolation = 'database' AND state = 'ready' AND version = latest) = $2
			AND count(*) = $1 + $2 FROM tenant_mgr.pool")" = t ] && return 0
		sleep 0.1
	done
	echo "the pool did not reach $1 schema and $2 database spares" >&2
	exit 1
}

# "p50|p99|mean|count" of the calls of a phase, in ms
stats() {
	sql_value "$TM_DB" "SELECT concat_ws('|', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
		round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
		round(avg(ms)::numeric, 2), count(*)) FROM public.bench_call WHERE phase = '$1'"
}

creates() {
	sql "$TM_DB" -c "CALL public.bench_creates('$1', '$2', '$3', $4)"
}

say "warming up"
raw_create_sql raw_warm_ 1 2 | write_sql warm_raw.sql
sql "$RAW_DB" -f "$WORK/warm_raw.sql" >/dev/null
creates warm w_ schema 2

say "raw: $N schemas and $R databases with 001..010"
raw_create_sql raw_ 1 "$N" | write_sql raw_schema.sql
checkpoint
timed_sql "$RAW_DB" -f "$WORK/raw_schema.sql"
RAW_S=$ELAPSED_US
{
	for ((i = 1; i <= R; i++)); do
		printf 'CREATE DATABASE rawdb_%d;\n\\c rawdb_%d\n' "$i" "$i"
		for f in "${CREATE_MIGRATIONS[@]}"; do
			printf 'BEGIN;\n'
			cat "$f"
			printf 'COMMIT;\n'
		done
		printf '\\c %s\n' "$RAW_DB"
	done
} | write_sql raw_database.sql
checkpoint
timed_sql "$RAW_DB" -f "$WORK/raw_database.sql"
RAW_D=$ELAPSED_US

say "outside: $N schema tenants built inside the caller's transaction, $N outside"
pool 0 0
checkpoint
creates inside in_ schema "$N"
checkpoint
sql "$TM_DB" -c 'ALTER ROLE CURRENT_USER SET tenant_mgr.build_in_transaction = off'
creates outside out_ schema "$N"
sql "$TM_DB" -c 'ALTER ROLE CURRENT_USER RESET tenant_mgr.build_in_transaction'
expect "tenants built outside (three steps in history or more)" "$(sql_value "$TM_DB" "SELECT count(DISTINCT tenant)
	FROM tenant_mgr.history WHERE tenant LIKE 'out\\_%' AND action = 'up'")" "$N"

say "latency: $N schema and $M database tenants claimed from a pool filled beforehand"
pool "$N" "$M"
checkpoint
creates pool_schema ps_ schema "$N"
creates pool_database pd_ database "$M"
expect "schema tenants from the pool (no migration in their history)" "$(sql_value "$TM_DB" "SELECT count(*)
	FROM tenant_mgr.tenant t WHERE name LIKE 'ps\\_%'
	  AND NOT EXISTS (SELECT FROM tenant_mgr.history h WHERE h.tenant = t.name AND h.action = 'up')")" "$N"

say "sustained: $((3 * N)) schema sign-ups with a pool of $N refilled by the launcher"
pool "$N" 0
checkpoint
creates sustained su_ schema $((3 * N))
SUSTAINED=$(sql_value "$TM_DB" "WITH c AS (SELECT n, at, ms, EXISTS (SELECT FROM tenant_mgr.history h
	  WHERE h.tenant = 'su_' || n AND h.action = 'up') AS built FROM public.bench_call WHERE phase = 'sustained')
	SELECT concat_ws('|', count(*) FILTER (WHERE NOT built),
	  round((count(*) FILTER (WHERE n <= $N) / (sum(ms) FILTER (WHERE n <= $N) / 1000))::numeric, 1),
	  round((count(*) FILTER (WHERE n > $N) / (sum(ms) FILTER (WHERE n > $N) / 1000))::numeric, 1)) FROM c")
pool 0 0

say "checking the tenants"
expect "tenants ready at version 10" "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenants
	WHERE state = 'ready' AND version = 10")" "$((2 + 2 * N + N + M + 3 * N))"
expect "problems found by tenant_mgr.verify()" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.verify()')" 0

PG_VERSION=$(sql_value postgres 'SHOW server_version')
awk -v n="$N" -v m="$M" -v r="$R" -v pgv="$PG_VERSION" -v cpus="$(nproc)" \
	-v rs="$RAW_S" -v rd="$RAW_D" \
	-v inside="$(stats inside)" -v outside="$(stats outside)" \
	-v ps="$(stats pool_schema)" -v pd="$(stats pool_database)" \
	-v sus="$SUSTAINED" '
function f(x, i,    a) { split(x, a, "|"); return a[i] + 0 }
function lat(what, x, raw,    p50, p99) {
	p50 = f(x, 1); p99 = f(x, 2)
	printf "    %-10s p50 %7.2f ms  p99 %7.2f ms  (raw DDL %8.2f ms a tenant: p50 %5.1fx faster)  %s\n",
		what, p50, p99, raw, raw / p50,
		(p50 <= 3 && p99 <= 20 && raw / p50 >= 10) ? "met" : "MISSED"
}
BEGIN {
	rs1 = rs / 1e3 / n; rd1 = rd / 1e3 / r
	printf "\npool benchmark: PostgreSQL %s, %d CPUs; tenant_create() one call after another, each committed\n", pgv, cpus
	printf "  latency, claimed from a warm pool (goal p50 <= 3 ms, p99 <= 20 ms, >= 10x faster than raw):\n"
	lat("schema", ps, rs1)
	lat("database", pd, rd1)
	printf "  built outside the caller\x27s transaction vs inside it (%d schema tenants each, goal <= 1.3x):\n", n
	printf "    inside  %7.2f ms a tenant, outside %7.2f ms a tenant: %.2fx  %s\n",
		f(inside, 3), f(outside, 3), f(outside, 3) / f(inside, 3),
		sprintf("%.2f", f(outside, 3) / f(inside, 3)) + 0 <= 1.3 ? "met" : "MISSED"
	printf "  sustained, %d sign-ups with a pool of %d refilled meanwhile: %d claimed;\n", 3 * n, n, f(sus, 1)
	printf "    %.1f sign-ups/s over the first %d, %.1f sign-ups/s over the next %d\n", f(sus, 2), n, f(sus, 3), 2 * n
	printf "  raw: %.2f ms a schema, %.2f ms a database (CREATE DATABASE and 001..010)\n", rs1, rd1
}'
