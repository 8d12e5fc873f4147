#!/usr/bin/env bash
# test/bench/pool.sh: tenant_create from the warm pool against building the
# tenant, and against the raw limit (one psql session running the same DDL).
#
# Builds and installs the tree as a fresh machine would, starts a throwaway
# cluster as the unprivileged user (tenant_mgr preloaded, control database
# bench_tm), registers the fixture migrations 001..010 and measures, in the
# same run, the time of one tenant_create() call after another in one psql
# session:
#   schema    N schema tenants built (pool_schema = 0), then N claimed from
#             a pool of N spares the launcher filled beforehand; raw: N
#             schemas with 001..010, one transaction each
#   database  M database tenants built, then M claimed from a pool of M;
#             raw: CREATE DATABASE and 001..010 inside it, M times
# The pool is filled before the clock starts: what is timed is the sign-up,
# which is what the pool is for.  Checks that every tenant is ready at
# version 10, that the claimed ones came from the pool, and that verify()
# finds nothing.  Slowness is reported, never failed; a functional error
# exits non-zero.
#
# Usage: sudo test/bench/pool.sh
#   BENCH_TENANTS=N      schema tenants per side (default 100)
#   BENCH_DB_TENANTS=M   database tenants per side (default 10)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$ROOT/test/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/test/bench/lib.sh"

N=${BENCH_TENANTS:-100}
M=${BENCH_DB_TENANTS:-10}
RAW_DB=bench_raw
TM_DB=bench_tm

positive_int BENCH_TENANTS "$N"
positive_int BENCH_DB_TENANTS "$M"

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

# Sets the pool sizes and waits until the launcher has them ready.
pool() {
	sql "$TM_DB" -c "ALTER SYSTEM SET tenant_mgr.pool_schema = $1" \
		-c "ALTER SYSTEM SET tenant_mgr.pool_database = $2" -c 'SELECT pg_reload_conf()' >/dev/null
	local i
	for ((i = 0; i < 6000; i++)); do
		[ "$(sql_value "$TM_DB" "SELECT count(*) FILTER (WHERE isolation = 'schema' AND state = 'ready' AND version = latest) = $1
			AND count(*) FILTER (WHERE isolation = 'database' AND state = 'ready' AND version = latest) = $2
			AND count(*) = $1 + $2 FROM tenant_mgr.pool")" = t ] && return 0
		sleep 0.1
	done
	echo "the pool did not reach $1 schema and $2 database spares" >&2
	exit 1
}

creates() {
	local prefix=$1 isolation=$2 count=$3 i
	for ((i = 1; i <= count; i++)); do
		printf "SELECT tenant_mgr.tenant_create('%s%d', '%s') \\\\g /dev/null\n" "$prefix" "$i" "$isolation"
	done
}

say "warming up"
raw_create_sql raw_warm_ 1 2 | write_sql warm_raw.sql
sql "$RAW_DB" -f "$WORK/warm_raw.sql" >/dev/null
creates warm_ schema 2 | write_sql warm_tm.sql
sql "$TM_DB" -f "$WORK/warm_tm.sql"

say "schema: $N tenants built, $N claimed from the pool, $N raw"
raw_create_sql raw_ 1 "$N" | write_sql raw_schema.sql
creates b_ schema "$N" | write_sql built_schema.sql
creates p_ schema "$N" | write_sql pooled_schema.sql
pool 0 0
checkpoint
timed_sql "$RAW_DB" -f "$WORK/raw_schema.sql"
RAW_S=$ELAPSED_US
checkpoint
timed_sql "$TM_DB" -f "$WORK/built_schema.sql"
BUILT_S=$ELAPSED_US
pool "$N" 0
CHECK_OIDS=$(sql_value "$TM_DB" 'SELECT string_agg(object_oid::text, $$,$$) FROM tenant_mgr.spare')
checkpoint
# the launcher refills the pool as spares go; that work is the launcher's,
# outside the sign-up, but shares the machine with it
timed_sql "$TM_DB" -f "$WORK/pooled_schema.sql"
POOLED_S=$ELAPSED_US
expect "schema tenants from the pool" "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenant
	WHERE name LIKE 'p\\_%' AND object_oid = ANY ('{$CHECK_OIDS}'::oid[])")" "$N"

say "database: $M tenants built, $M claimed from the pool, $M raw"
{
	for ((i = 1; i <= M; i++)); do
		printf 'CREATE DATABASE rawdb_%d;\n\\c rawdb_%d\n' "$i" "$i"
		for f in "${CREATE_MIGRATIONS[@]}"; do
			printf 'BEGIN;\n'
			cat "$f"
			printf 'COMMIT;\n'
		done
		printf '\\c %s\n' "$RAW_DB"
	done
} | write_sql raw_database.sql
creates db_ database "$M" | write_sql built_database.sql
creates dp_ database "$M" | write_sql pooled_database.sql
pool 0 0
checkpoint
timed_sql "$RAW_DB" -f "$WORK/raw_database.sql"
RAW_D=$ELAPSED_US
checkpoint
timed_sql "$TM_DB" -f "$WORK/built_database.sql"
BUILT_D=$ELAPSED_US
pool 0 "$M"
CHECK_OIDS=$(sql_value "$TM_DB" 'SELECT string_agg(object_oid::text, $$,$$) FROM tenant_mgr.spare')
checkpoint
timed_sql "$TM_DB" -f "$WORK/pooled_database.sql"
POOLED_D=$ELAPSED_US
expect "database tenants from the pool" "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenant
	WHERE name LIKE 'dp\\_%' AND object_oid = ANY ('{$CHECK_OIDS}'::oid[])")" "$M"
pool 0 0

say "checking the tenants"
expect "tenants ready at version 10" "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenants
	WHERE state = 'ready' AND version = 10")" "$((2 * N + 2 * M + 2))"
expect "problems found by tenant_mgr.verify()" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.verify()')" 0

PG_VERSION=$(sql_value postgres 'SHOW server_version')
awk -v n="$N" -v m="$M" -v pgv="$PG_VERSION" -v cpus="$(nproc)" \
	-v rs="$RAW_S" -v bs="$BUILT_S" -v ps="$POOLED_S" \
	-v rd="$RAW_D" -v bd="$BUILT_D" -v pd="$POOLED_D" '
function line(what, us, count, raw) {
	printf "    %-34s %9.3f s  %8.2f ms/tenant  %6.2fx raw\n", what, us / 1e6, us / 1e3 / count, us / raw
}
BEGIN {
	printf "\npool benchmark: PostgreSQL %s, %d CPUs; one tenant_create() after another in one session\n", pgv, cpus
	printf "  schema tenants (%d per side, migrations 001..010):\n", n
	line("raw (psql, the same DDL)", rs, n, rs)
	line("tenant_create, built", bs, n, rs)
	line("tenant_create, claimed from the pool", ps, n, rs)
	printf "  database tenants (%d per side):\n", m
	line("raw (CREATE DATABASE, the same DDL)", rd, m, rd)
	line("tenant_create, built", bd, m, rd)
	line("tenant_create, claimed from the pool", pd, m, rd)
}'
