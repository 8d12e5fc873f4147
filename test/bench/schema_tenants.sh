#!/usr/bin/env bash
# test/bench/schema_tenants.sh: schema tenants through tenant_mgr against the
# raw limit, i.e. one psql session running the same DDL by hand.
#
# Builds and installs the tree as a fresh machine would, starts a throwaway
# cluster as the unprivileged user and measures, in the same run and on the
# fixture migrations (test/fixtures):
#   create   N tenants with 001..010 (raw: one transaction per schema)
#   migrate  011 onto all N tenants  (raw: one transaction per schema)
#   no-op    tenant_migrate() with nothing to do
# Goals: create <= 1.2x raw, migrate <= 1.5x raw.  A missed goal is reported,
# not failed; a functional error (any psql error, wrong counts) exits non-zero.
#
# Usage: sudo test/bench/schema_tenants.sh   (BENCH_TENANTS=N, default 200)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$ROOT/test/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/test/bench/lib.sh"

N=${BENCH_TENANTS:-200}
WARMUP=5
CREATE_GOAL=1.2
MIGRATE_GOAL=1.5
RAW_DB=bench_raw
TM_DB=bench_tm

positive_int BENCH_TENANTS "$N"

TREE=
WORK=
trap_exit 'bench_cleanup schema_tenants'

bench_prepare

bench_cluster \
	"shared_preload_libraries = 'tenant_mgr'" \
	"tenant_mgr.database = '$TM_DB'"

raw_migrate_sql() {
	local i
	for ((i = 1; i <= N; i++)); do
		printf 'BEGIN;\nSET LOCAL search_path = raw_%d;\n' "$i"
		cat "$NEW_MIGRATION"
		printf 'COMMIT;\n'
	done
}

tm_create_sql() {
	local prefix=$1 from=$2 to=$3 i
	for ((i = from; i <= to; i++)); do
		printf "SELECT tenant_mgr.tenant_create('%s%d');\n" "$prefix" "$i"
	done
}

say "preparing databases $RAW_DB and $TM_DB"
sql postgres -c "CREATE DATABASE $RAW_DB" -c "CREATE DATABASE $TM_DB"
sql "$TM_DB" -c 'CREATE EXTENSION tenant_mgr'
register_sql "${CREATE_MIGRATIONS[@]}" | write_sql register_create.sql
sql "$TM_DB" -f "$WORK/register_create.sql" >/dev/null
expect "registered migrations" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.migration')" 10

say "warming up ($WARMUP tenants each side, created and dropped)"
{
	raw_create_sql raw_warm_ 1 "$WARMUP"
	echo 'SET client_min_messages = warning;'	# no list of cascaded drops
	for ((i = 1; i <= WARMUP; i++)); do echo "DROP SCHEMA raw_warm_$i CASCADE;"; done
} | write_sql warm_raw.sql
sql "$RAW_DB" -f "$WORK/warm_raw.sql" >/dev/null
{
	tm_create_sql warm_ 1 "$WARMUP"
	for ((i = 1; i <= WARMUP; i++)); do echo "SELECT tenant_mgr.tenant_drop('warm_$i');"; done
} | write_sql warm_tm.sql
sql "$TM_DB" -f "$WORK/warm_tm.sql" >/dev/null

say "create: $N tenants with migrations 001..010"
raw_create_sql raw_ 1 "$N" | write_sql create_raw.sql
tm_create_sql t_ 1 "$N" | write_sql create_tm.sql

checkpoint
timed_sql "$RAW_DB" -f "$WORK/create_raw.sql"
RAW_CREATE_US=$ELAPSED_US
expect "raw schemas" "$(sql_value "$RAW_DB" "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'raw\\_%'")" "$N"

checkpoint
timed_sql "$TM_DB" -f "$WORK/create_tm.sql"
TM_CREATE_US=$ELAPSED_US
expect "tenants at version 10" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.tenants WHERE version = 10')" "$N"

say "migrate: 011 onto $N tenants"
raw_migrate_sql | write_sql migrate_raw.sql
register_sql "$NEW_MIGRATION" | write_sql register_new.sql
sql "$TM_DB" -f "$WORK/register_new.sql" >/dev/null

checkpoint
timed_sql "$RAW_DB" -f "$WORK/migrate_raw.sql"
RAW_MIGRATE_US=$ELAPSED_US
expect "raw schemas with users.last_login_at" "$(sql_value "$RAW_DB" \
	"SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	  JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE n.nspname LIKE 'raw\\_%' AND c.relname = 'users' AND a.attname = 'last_login_at'")" "$N"

checkpoint
timed_sql "$TM_DB" -c 'SELECT count(*) FROM tenant_mgr.tenant_migrate()'
TM_MIGRATE_US=$ELAPSED_US
expect "rows of tenant_migrate()" "$(cat "$WORK/last.out")" "$N"
expect "tenants at version 11" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.tenants WHERE version = 11')" "$N"

say "no-op: tenant_migrate() with every tenant at 11"
timed_sql "$TM_DB" -c 'SELECT count(*) FROM tenant_mgr.tenant_migrate()'
NOOP_US=$ELAPSED_US
expect "rows of a no-op tenant_migrate()" "$(cat "$WORK/last.out")" 0

expect "problems found by tenant_mgr.verify()" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.verify()')" 0

# Report.  Ratios of in-session wall-clock totals; per tenant = total / N.
PG_VERSION=$(sql_value postgres 'SHOW server_version')
awk -v n="$N" -v pgv="$PG_VERSION" \
	-v rc="$RAW_CREATE_US" -v tc="$TM_CREATE_US" \
	-v rm="$RAW_MIGRATE_US" -v tm="$TM_MIGRATE_US" \
	-v cg="$CREATE_GOAL" -v mg="$MIGRATE_GOAL" \
	-v noop="$NOOP_US" '
function line(phase, side, us) {
	printf "  %-8s %-11s %9.3f s  %9.2f ms/tenant\n", phase, side, us / 1e6, us / 1e3 / n
}
# judged on the ratio as printed, so that "1.20x" never reads as a miss
function verdict(phase, ratio, goal) {
	ratio = sprintf("%.2f", ratio)
	printf "  %-8s tenant_mgr/raw = %sx   goal <= %.1fx   %s\n", phase, ratio, goal,
		ratio + 0 <= goal + 0 ? "met" : "MISSED"
}
BEGIN {
	printf "\nschema_tenants benchmark: %d tenants, PostgreSQL %s\n", n, pgv
	printf "  raw = one psql session, one transaction per schema; tenant_mgr = one call per tenant (create), one call for all (migrate)\n\n"
	line("create", "raw", rc);  line("create", "tenant_mgr", tc)
	line("migrate", "raw", rm); line("migrate", "tenant_mgr", tm)
	printf "\n"
	verdict("create", tc / rc, cg)
	verdict("migrate", tm / rm, mg)
	printf "\n  no-op tenant_migrate() over %d tenants: %.2f ms\n", n, noop / 1e3
}'
