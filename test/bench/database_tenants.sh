#!/usr/bin/env bash
# test/bench/database_tenants.sh: database tenants through tenant_mgr against
# the raw limit, i.e. one psql session running the same DDL by hand.
#
# Builds and installs the tree as a fresh machine would, starts a throwaway
# cluster as the unprivileged user (tenant_mgr preloaded, control database
# bench_tm) and measures, in the same run and on the fixture migrations
# (test/fixtures):
#   create   N database tenants with 001..010
#            raw: CREATE DATABASE, \c into it, one transaction per migration,
#            \c back; tenant_mgr: one tenant_create(..., 'database') per tenant
#   migrate  011 onto all N tenants
#            raw: \c into each database, 011 in one transaction, \c back;
#            tenant_mgr: one tenant_migrate() (executors in parallel)
#   no-op    tenant_migrate() with nothing to do
#   queued   N tenant_create(..., wait => false) in one transaction, then
#            tenant_wait() on the last one: time until all are ready (the
#            launcher creates them one after the other, with 001..011)
# Goals: create <= 1.2x raw, migrate <= 1.5x raw.  A missed goal is reported,
# not failed; a functional error (any psql error, wrong counts, tenants not
# at the expected version, problems found by verify()) exits non-zero.
#
# Usage: sudo test/bench/database_tenants.sh   (BENCH_TENANTS=N, default 20)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$ROOT/test/lib.sh"

N=${BENCH_TENANTS:-20}
WARMUP=2
CREATE_GOAL=1.2
MIGRATE_GOAL=1.5
RAW_DB=bench_raw
TM_DB=bench_tm
WAIT_TIMEOUT='1 hour'	# for tenant_wait(); executors have job_timeout too

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
		echo "database_tenants: FAILED (exit $rc)" >&2
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

# Every create runs two executors (background workers) next to the launcher,
# a fleet migrate up to tenant_mgr.max_workers (4) of them.
say "starting a throwaway cluster in $WORK (port $PORT)"
as_user initdb -D "$WORK/data" -A trust -E UTF8 --no-locale --no-sync >/dev/null
cat >>"$WORK/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
max_worker_processes = 16
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
# same psql run, so that neither runuser (~0.1 s here) nor the first
# connection counts.  The start is kept in a psql variable, which survives
# \c: the raw side switches databases, and both readings come from the same
# server clock.  Sets ELAPSED_US; leaves what the arguments printed in
# $WORK/last.out.
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

# The value of "label|value" in $WORK/last.out.
labelled() {
	sed -n "s/^$1|//p" "$WORK/last.out"
}

# Raw side: the same DDL as a careful DBA would run it in one psql session:
# the database, then each migration in a transaction of its own inside it,
# then back to the session's own database.
raw_create_sql() {
	local prefix=$1 from=$2 to=$3 i f
	for ((i = from; i <= to; i++)); do
		printf 'CREATE DATABASE %s%d;\n\\c %s%d\n' "$prefix" "$i" "$prefix" "$i"
		for f in "${CREATE_MIGRATIONS[@]}"; do
			printf 'BEGIN;\n'
			cat "$f"
			printf 'COMMIT;\n'
		done
		printf '\\c %s\n' "$RAW_DB"
	done
}

raw_migrate_sql() {
	local i
	for ((i = 1; i <= N; i++)); do
		printf '\\c raw_%d\nBEGIN;\n' "$i"
		cat "$NEW_MIGRATION"
		printf 'COMMIT;\n\\c %s\n' "$RAW_DB"
	done
}

# Checks the content of each database named: one line "t" per database that
# has the seed rows of 010 and, when version is 11, the column of 011.
content_check_sql() {
	local version=$1 db
	shift
	for db in "$@"; do
		printf '\\c %s\n' "$db"
		printf "SELECT (SELECT count(*) FROM public.settings) = 2 AND (%d < 11 OR EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'last_login_at' AND NOT attisdropped));\n" \
			"$version"
	done
}

# Runs content_check_sql on the databases given and fails unless all pass.
expect_content() {
	local what=$1 version=$2
	shift 2
	content_check_sql "$version" "$@" | write_sql content_check.sql
	expect "$what" "$(sql postgres -tA -f "$WORK/content_check.sql" | grep -c '^t$' || true)" "$#"
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
		printf "SELECT tenant_mgr.tenant_create('%s%d', 'database');\n" "$prefix" "$i"
	done
}

# Names of the databases of tenants prefix1..prefixN (tenant_mgr.prefix is
# the default "tenant_"), or of the raw databases.
db_names() {
	local prefix=$1 i
	for ((i = 1; i <= N; i++)); do printf '%s%d\n' "$prefix" "$i"; done
}

# Database tenants named prefix% that are ready at a version.
tm_ready_at() {
	sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenants
	 WHERE name LIKE '${1//_/\\_}%' AND isolation = 'database' AND state = 'ready' AND version = $2"
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
	for ((i = 1; i <= WARMUP; i++)); do echo "DROP DATABASE raw_warm_$i;"; done
} | write_sql warm_raw.sql
sql "$RAW_DB" -f "$WORK/warm_raw.sql" >/dev/null
{
	tm_create_sql warm_ 1 "$WARMUP"
	for ((i = 1; i <= WARMUP; i++)); do echo "SELECT tenant_mgr.tenant_drop('warm_$i');"; done
	# the launcher drops after commit; wait, so that no drop overlaps a timing
	for ((i = 1; i <= WARMUP; i++)); do
		echo "SELECT 'dropped|' || tenant_mgr.tenant_wait('warm_$i', '$WAIT_TIMEOUT');"
	done
} | write_sql warm_tm.sql
sql "$TM_DB" -tA -f "$WORK/warm_tm.sql" >"$WORK/last.out"
expect "warm-up drops that succeeded" "$(labelled dropped | grep -c '^true$' || true)" "$WARMUP"
expect "databases left by the warm-up" "$(sql_value postgres \
	"SELECT count(*) FROM pg_database WHERE datname LIKE '%warm%' OR datname LIKE 'tenant_mgr_drop_%'")" 0

# other work on the machine skews the ratios: the report shows the load
LOAD_BEFORE=$(cut -d ' ' -f 1 /proc/loadavg)

say "create: $N database tenants with migrations 001..010"
raw_create_sql raw_ 1 "$N" | write_sql create_raw.sql
tm_create_sql d_ 1 "$N" | write_sql create_tm.sql

checkpoint
timed_sql "$RAW_DB" -f "$WORK/create_raw.sql"
RAW_CREATE_US=$ELAPSED_US
expect "raw databases" "$(sql_value postgres "SELECT count(*) FROM pg_database WHERE datname LIKE 'raw\\_%'")" "$N"

checkpoint
timed_sql "$TM_DB" -f "$WORK/create_tm.sql"
TM_CREATE_US=$ELAPSED_US
expect "database tenants ready at version 10" "$(tm_ready_at d_ 10)" "$N"
expect "tenant databases" "$(sql_value postgres "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\\_d\\_%'")" "$N"
# what the executors measured of the migration SQL itself, for the report
TM_CREATE_SQL_US=$(sql_value "$TM_DB" "SELECT round(coalesce(extract(epoch FROM sum(duration)), 0) * 1e6)::bigint
	FROM tenant_mgr.event WHERE tenant LIKE 'd\\_%' AND action = 'up' AND status = 'ok'")

say "migrate: 011 onto $N database tenants"
raw_migrate_sql | write_sql migrate_raw.sql
register_sql "$NEW_MIGRATION" | write_sql register_new.sql
sql "$TM_DB" -f "$WORK/register_new.sql" >/dev/null

checkpoint
timed_sql "$RAW_DB" -f "$WORK/migrate_raw.sql"
RAW_MIGRATE_US=$ELAPSED_US
mapfile -t RAW_DBS < <(db_names raw_)
expect_content "raw databases with 001..011" 11 "${RAW_DBS[@]}"

checkpoint
timed_sql "$TM_DB" -c 'SELECT count(*) FROM tenant_mgr.tenant_migrate()'
TM_MIGRATE_US=$ELAPSED_US
expect "rows of tenant_migrate()" "$(cat "$WORK/last.out")" "$N"
expect "database tenants ready at version 11" "$(tm_ready_at d_ 11)" "$N"
mapfile -t TM_DBS < <(db_names tenant_d_)
expect_content "tenant databases with 001..011" 11 "${TM_DBS[@]}"
expect "problems found by tenant_mgr.verify()" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.verify()')" 0

say "no-op: tenant_migrate() with every tenant at 11"
timed_sql "$TM_DB" -c 'SELECT count(*) FROM tenant_mgr.tenant_migrate()'
NOOP_US=$ELAPSED_US
expect "rows of a no-op tenant_migrate()" "$(cat "$WORK/last.out")" 0

say "queued: $N tenant_create(..., wait => false) in one transaction, until ready"
{
	echo 'BEGIN;'
	for ((i = 1; i <= N; i++)); do
		echo "SELECT tenant_mgr.tenant_create('q_$i', 'database', wait => false) \\g /dev/null"
	done
	echo 'COMMIT;'
	echo "SELECT 'enqueued|' || round(extract(epoch FROM clock_timestamp() - :'bench_t0'::timestamptz) * 1e6)::bigint;"
	# jobs run in order, one at a time: the last one ready means all are
	echo "SELECT 'ready|' || tenant_mgr.tenant_wait('q_$N', '$WAIT_TIMEOUT');"
} | write_sql queued_tm.sql

checkpoint
timed_sql "$TM_DB" -f "$WORK/queued_tm.sql"
QUEUED_US=$ELAPSED_US
ENQUEUE_US=$(labelled enqueued)
[[ $ENQUEUE_US =~ ^[0-9]+$ ]] || { echo "no enqueue time from psql: \"$ENQUEUE_US\"" >&2; exit 1; }
expect "tenant_wait() of the last queued tenant" "$(labelled ready)" true
expect "queued tenants ready at version 11" "$(tm_ready_at q_ 11)" "$N"
expect "queued create jobs done" "$(sql_value "$TM_DB" \
	"SELECT count(*) FROM tenant_mgr.job WHERE tenant LIKE 'q\\_%' AND action = 'create' AND state = 'done'")" "$N"
mapfile -t QUEUED_DBS < <(db_names tenant_q_)
expect_content "queued tenant databases with 001..011" 11 "${QUEUED_DBS[@]}"
# the launcher's own figure: from a job's start to its end
JOB_US=$(sql_value "$TM_DB" "SELECT round(extract(epoch FROM sum(finished_at - started_at)) * 1e6)::bigint
	FROM tenant_mgr.job WHERE tenant LIKE 'q\\_%' AND action = 'create'")

expect "problems found by tenant_mgr.verify()" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.verify()')" 0
expect "intents left" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.intent')" 0

# Report.  Ratios of in-session wall-clock totals; per tenant = total / N.
PG_VERSION=$(sql_value postgres 'SHOW server_version')
LOAD_AFTER=$(cut -d ' ' -f 1 /proc/loadavg)
awk -v n="$N" -v pgv="$PG_VERSION" \
	-v rc="$RAW_CREATE_US" -v tc="$TM_CREATE_US" -v tcsql="$TM_CREATE_SQL_US" \
	-v rm="$RAW_MIGRATE_US" -v tm="$TM_MIGRATE_US" \
	-v cg="$CREATE_GOAL" -v mg="$MIGRATE_GOAL" \
	-v noop="$NOOP_US" -v q="$QUEUED_US" -v qe="$ENQUEUE_US" -v qj="$JOB_US" \
	-v cpus="$(nproc)" -v load0="$LOAD_BEFORE" -v load1="$LOAD_AFTER" '
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
	printf "\ndatabase_tenants benchmark: %d tenants, PostgreSQL %s\n", n, pgv
	printf "  raw = one psql session: CREATE DATABASE, \\c, one transaction per migration, \\c back\n"
	printf "  tenant_mgr = one call per tenant (create), one call for all (migrate, up to 4 executors at once)\n\n"
	line("create", "raw", rc);  line("create", "tenant_mgr", tc)
	line("migrate", "raw", rm); line("migrate", "tenant_mgr", tm)
	printf "\n"
	verdict("create", tc / rc, cg)
	verdict("migrate", tm / rm, mg)
	printf "\n  tenant_mgr create, of which migration SQL as timed by the executors: %.2f ms/tenant\n",
		tcsql / 1e3 / n
	printf "  no-op tenant_migrate() over %d tenants: %.2f ms\n", n, noop / 1e3
	printf "\n  queued create of %d tenants (001..011), one transaction then tenant_wait() on the last:\n", n
	printf "    enqueue (transaction)  %9.3f s  %9.2f ms/tenant\n", qe / 1e6, qe / 1e3 / n
	printf "    time to ready (total)  %9.3f s  %9.2f ms/tenant   %.2fx raw create\n",
		q / 1e6, q / 1e3 / n, q / rc
	printf "    launcher job time      %9.3f s  %9.2f ms/tenant\n", qj / 1e6, qj / 1e3 / n
	printf "\n  machine: %d CPUs, load average %s before the timed phases, %s after\n", cpus, load0, load1
}'
