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

N=${BENCH_TENANTS:-200}
WARMUP=5
CREATE_GOAL=1.2
MIGRATE_GOAL=1.5
RAW_DB=bench_raw
TM_DB=bench_tm

if ! [[ $N =~ ^[1-9][0-9]*$ ]]; then
	echo "BENCH_TENANTS must be a positive integer, not \"$N\"" >&2
	exit 2
fi

TREE=
WORK=
cleanup() {
	local rc=$?
	if [ -n "$WORK" ] && [ -f "$WORK/data/postmaster.pid" ]; then
		as_user pg_ctl -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [ "$rc" -ne 0 ]; then
		echo "schema_tenants: FAILED (exit $rc)" >&2
		if [ -n "$WORK" ] && [ -s "$WORK/server.log" ]; then
			echo "--- last lines of the server log ---" >&2
			tail -n 30 "$WORK/server.log" >&2
		fi
	fi
	[ -n "$WORK" ] && rm -rf "$WORK"
	[ -n "$TREE" ] && rm -rf "$TREE"
	exit "$rc"
}
trap cleanup EXIT
# without these, an interrupt would skip the EXIT trap and leak the cluster
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_deps
TREE=$(stage_tree "$ROOT")
build_install "$TREE"

FIXTURES=$TREE/test/fixtures
CREATE_MIGRATIONS=()
for v in $(seq 1 10); do
	f=$(printf '%s/%03d_' "$FIXTURES" "$v")
	f=$(compgen -G "${f}*.sql" || true)
	if [ -z "$f" ] || [ "$(wc -l <<<"$f")" -ne 1 ]; then
		echo "expected exactly one fixture migration $(printf '%03d' "$v")_*.sql in $FIXTURES" >&2
		exit 1
	fi
	CREATE_MIGRATIONS+=("$f")
done
NEW_MIGRATION=$FIXTURES/011_new.sql
[ -f "$NEW_MIGRATION" ] || { echo "missing $NEW_MIGRATION" >&2; exit 1; }

# The cluster's directory doubles as its socket directory, so the port only
# needs to be free of TCP listeners and of sockets in the usual places.
port_is_free() {
	local p=$1
	[ ! -e "/tmp/.s.PGSQL.$p" ] && [ ! -e "/var/run/postgresql/.s.PGSQL.$p" ] &&
		! (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}
PORT=
for p in $(seq 5490 5589); do
	if port_is_free "$p"; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "no free port in 5490..5589" >&2; exit 1; }

WORK=$(mktemp -d /tmp/tenant_mgr_bench.XXXXXX)
[ "$(id -u)" -eq 0 ] && chown "$TM_USER" "$WORK"
cd "$WORK"	# runuser keeps the cwd; the cluster user must be able to enter it

say "starting a throwaway cluster in $WORK (port $PORT)"
as_user initdb -D "$WORK/data" -A trust -E UTF8 --no-locale --no-sync >/dev/null
cat >>"$WORK/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = '$TM_DB'
EOF
as_user pg_ctl -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null

# psql as the cluster user: no psqlrc, quiet, and any error is fatal
sql() {
	local db=$1
	shift
	as_user psql -X -q -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -d "$db" "$@"
}
# one value from one query
sql_value() { sql "$1" -tA -c "$2"; }

expect() {
	local what=$1 got=$2 want=$3
	if [ "$got" != "$want" ]; then
		echo "$what: expected $want, got \"$got\"" >&2
		exit 1
	fi
}

# Runs psql with the given arguments between two clock readings taken in the
# same session, so that neither runuser (~0.1 s here) nor connecting counts.
# Sets ELAPSED_US; leaves what the arguments printed in $WORK/last.out.
timed_sql() {
	local db=$1
	shift
	sql "$db" -tA -f "$WORK/clock_start.sql" "$@" -f "$WORK/clock_stop.sql" >"$WORK/timed.out"
	ELAPSED_US=$(tail -n 1 "$WORK/timed.out")
	head -n -1 "$WORK/timed.out" >"$WORK/last.out"
	[[ $ELAPSED_US =~ ^[0-9]+$ ]] || { echo "no elapsed time from psql: \"$ELAPSED_US\"" >&2; exit 1; }
}

# A checkpoint before each timed phase, so that none pays for the previous one.
checkpoint() { sql postgres -c 'CHECKPOINT'; }

# Saves stdin as $WORK/$1, readable by psql running as the cluster user.
write_sql() {
	cat >"$WORK/$1"
	chmod 644 "$WORK/$1"
}

# Raw side: the same DDL, one transaction per schema, as a careful DBA would.
raw_create_sql() {
	local prefix=$1 from=$2 to=$3 i
	for ((i = from; i <= to; i++)); do
		printf 'BEGIN;\nCREATE SCHEMA %s%d;\nSET LOCAL search_path = %s%d;\n' \
			"$prefix" "$i" "$prefix" "$i"
		cat "${CREATE_MIGRATIONS[@]}"
		printf 'COMMIT;\n'
	done
}

raw_migrate_sql() {
	local i
	for ((i = 1; i <= N; i++)); do
		printf 'BEGIN;\nSET LOCAL search_path = raw_%d;\n' "$i"
		cat "$NEW_MIGRATION"
		printf 'COMMIT;\n'
	done
}

# Registers a fixture file through a psql variable, so its text is passed
# as-is (NNN_name.sql: version NNN, name "name").
register_sql() {
	local f base version name
	for f in "$@"; do
		base=$(basename "$f" .sql)
		version=$((10#${base%%_*}))
		name=${base#*_}
		printf "\\\\set up \`cat '%s'\`\n" "$f"
		printf "SELECT tenant_mgr.migration_add(%d, '%s', :'up');\n" "$version" "$name"
	done
}

tm_create_sql() {
	local prefix=$1 from=$2 to=$3 i
	for ((i = from; i <= to; i++)); do
		printf "SELECT tenant_mgr.tenant_create('%s%d');\n" "$prefix" "$i"
	done
}

echo "SELECT clock_timestamp() AS bench_t0 \\gset" | write_sql clock_start.sql
echo "SELECT round(extract(epoch FROM clock_timestamp() - :'bench_t0'::timestamptz) * 1e6)::bigint;" |
	write_sql clock_stop.sql

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
