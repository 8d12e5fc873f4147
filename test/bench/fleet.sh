#!/usr/bin/env bash
# test/bench/fleet.sh: fleet runs of tenant_migrate() (a leader executor and
# its helpers, one transaction per migration per tenant) against the raw
# limit, i.e. one psql session running the same DDL by hand.
#
# Builds and installs the tree as a fresh machine would, starts a throwaway
# cluster as the unprivileged user (tenant_mgr preloaded, control database
# bench_tm, PostgreSQL's default max_locks_per_transaction) and measures, in
# the same run and on the fixture migrations (test/fixtures):
#   migrate  N schema tenants created with 001..010 (tenant_create in a loop,
#            not timed), then 011 onto all of them: tenant_migrate() vs one
#            psql session, one transaction per schema.  Goal <= 0.7x raw.
#   scale    a fresh migration (ALTER TABLE users ADD COLUMN c_<k> int) onto
#            fleets of N, SMALL, SCALE and LARGE schema tenants: zero
#            failures (runs.failed = 0, every run_tenants row migrated) and
#            the per-tenant cost at the largest fleet within 1.3x of the cost
#            at SMALL.  The fleet shrinks from N to SMALL by tenant_drop and
#            grows to SCALE (LARGE) by tenant_create, neither timed.
#   no-op    tenant_migrate() with nothing pending at SMALL and at the
#            largest fleet (best of 5): under 0.02 ms per tenant at each,
#            and flat (largest within 1.3x of SMALL per tenant).  The floor
#            of such timings, SELECT 1 timed the same way, is shown too.
#   lock     while a fleet run over N tenants applies a migration that takes
#            an ACCESS EXCLUSIVE lock and rewrites the table (ADD COLUMN with
#            a volatile default), pgbench (one client) queries users of one
#            tenant, which holds BENCH_LOCK_ROWS rows, in a loop: its longest
#            wait during the run must stay under that tenant's migration time
#            plus tenant_mgr.lock_timeout.
#   database D database tenants (tenant_create(name, 'database') in a loop,
#            not timed), one migration: tenant_migrate(pattern => 'd%') vs
#            one psql session doing \c into each database and the DDL in a
#            transaction there.  Goal <= 0.5x raw.
# A missed goal is reported, not failed; a functional error (any psql error,
# wrong counts, tenants not at the expected version, failures left after a
# re-run, problems found by verify(), verify() failing over the final fleet
# after the report is printed) exits non-zero.
#
# Usage: sudo test/bench/fleet.sh   (takes the install lock, see README:
#        flock /tmp/tm-test.lock bash test/bench/fleet.sh)
#   BENCH_TENANTS=N      migrate and lock fleet (default 1000)
#   BENCH_SMALL=N        smallest fleet of scale and no-op (default 100)
#   BENCH_SCALE=N        largest fleet of scale and no-op (default 3000)
#   BENCH_LARGE=N        the largest fleet (default 10000; 0 stops at
#                        BENCH_SCALE, about 5 minutes sooner on 2 cores)
#   BENCH_DB_TENANTS=N   database tenants (default 50)
#   BENCH_LOCK_ROWS=N    rows in the queried tenant's users (default 50000)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$ROOT/test/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/test/bench/lib.sh"

N=${BENCH_TENANTS:-1000}
SMALL=${BENCH_SMALL:-100}
SCALE=${BENCH_SCALE:-3000}
LARGE=${BENCH_LARGE:-10000}
DBN=${BENCH_DB_TENANTS:-50}
LOCK_ROWS=${BENCH_LOCK_ROWS:-50000}
MIGRATE_GOAL=0.7
SCALE_GOAL=1.3
NOOP_GOAL=0.02	# ms per tenant
NOOP_REPEATS=5
DB_GOAL=0.5
RAW_DB=bench_raw
TM_DB=bench_tm

positive_int BENCH_TENANTS "$N"
positive_int BENCH_SMALL "$SMALL"
positive_int BENCH_SCALE "$SCALE"
if [ "$LARGE" = 0 ]; then LARGE=; else positive_int BENCH_LARGE "$LARGE"; fi
positive_int BENCH_DB_TENANTS "$DBN"
positive_int BENCH_LOCK_ROWS "$LOCK_ROWS"
if [ "$SMALL" -ge "$N" ] || [ "$N" -gt "$SCALE" ] || { [ -n "$LARGE" ] && [ "$LARGE" -le "$SCALE" ]; }; then
	echo "sizes must grow: BENCH_SMALL ($SMALL) < BENCH_TENANTS ($N) <= BENCH_SCALE ($SCALE) < BENCH_LARGE (${LARGE:-none})" >&2
	exit 2
fi
command -v pgbench >/dev/null || { echo "pgbench is missing (postgresql-client-$PG_MAJOR ships it)" >&2; exit 1; }

TREE=
WORK=
CLIENT_PID=
# The EXIT trap: the pgbench client of the lock phase, if still running,
# goes before the cluster; bench_cleanup gets the exit status.
fleet_cleanup() {
	local rc=$?
	[ -z "$CLIENT_PID" ] || kill "$CLIENT_PID" 2>/dev/null || true
	set +e	# else the status handed on below would end the trap itself
	(exit "$rc")
	bench_cleanup fleet
}
trap_exit fleet_cleanup

bench_prepare

# A fleet run uses up to tenant_mgr.max_workers (4) executors, and database
# tenants' creation two; max_locks_per_transaction stays at its default.
bench_cluster \
	"max_worker_processes = 16" \
	"shared_preload_libraries = 'tenant_mgr'" \
	"tenant_mgr.database = '$TM_DB'"

# ---------------------------------------------------------------- helpers

# Creates schema tenants prefix<from>..prefix<to> with every registered
# migration, one tenant_create per transaction, in CREATE_JOBS psql sessions
# at once (not timed: only the fleet exists sooner).
CREATE_JOBS=$(nproc)
tm_create() {
	local prefix=$1 from=$2 to=$3 j i pids=()
	for ((j = 0; j < CREATE_JOBS; j++)); do
		for ((i = from + j; i <= to; i += CREATE_JOBS)); do
			printf "SELECT tenant_mgr.tenant_create('%s%d') \\\\g /dev/null\n" "$prefix" "$i"
		done | write_sql "create_tm_$j.sql"
		sql "$TM_DB" -f "$WORK/create_tm_$j.sql" &
		pids+=($!)
	done
	for j in "${pids[@]}"; do
		wait "$j" || { echo "creating tenants $prefix$from..$prefix$to failed" >&2; exit 1; }
	done
}

tm_drop() {
	local prefix=$1 from=$2 to=$3 i
	for ((i = from; i <= to; i++)); do
		printf "SELECT tenant_mgr.tenant_drop('%s%d') \\\\g /dev/null\n" "$prefix" "$i"
	done | write_sql drop_tm.sql
	sql "$TM_DB" -f "$WORK/drop_tm.sql"
}

ready_tenants() {
	sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenants WHERE state = 'ready'${1:+ AND $1}"
}

# The latest migration version registered.
latest_version() {
	sql_value "$TM_DB" 'SELECT max(version) FROM tenant_mgr.migration'
}

# Registers migration $1 named $2 with up SQL $3 (one line, no quotes).
register() {
	sql "$TM_DB" -c "SELECT tenant_mgr.migration_add($1, '$2', \$m\$$3\$m\$)" >/dev/null
}

# Facts of the latest run: "id|state|tenants|done|failed|skipped|not_done".
last_run() {
	sql_value "$TM_DB" "SELECT concat_ws('|', id, state, tenants, done, failed, skipped, not_done)
	  FROM tenant_mgr.runs ORDER BY id DESC LIMIT 1"
}

# Times one fleet run, SQL "$2" (default tenant_migrate()), expected to
# migrate $1 tenants with one step each; sets ELAPSED_US and RUN_ID, and
# RUN_OK to 1 if every tenant was migrated (runs.failed = 0, every
# run_tenants row migrated), else 0 after printing what went wrong.
timed_fleet_run() {
	local want=$1 call=${2:-tenant_mgr.tenant_migrate()} facts
	local -a f
	checkpoint
	timed_sql "$TM_DB" -c "SELECT count(*) FROM $call"
	facts=$(last_run)
	IFS='|' read -r -a f <<<"$facts"
	RUN_ID=${f[0]}
	RUN_OK=1
	if [ "${f[1]}" != "done" ] || [ "${f[2]}" != "$want" ] || [ "${f[3]}" != "$want" ] ||
		[ "${f[4]}" != 0 ] || [ "$(cat "$WORK/last.out")" != "$want" ] ||
		[ "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.run_tenants
		      WHERE run_id = $RUN_ID AND status = 'migrated'")" != "$want" ]; then
		RUN_OK=0
		echo "run $RUN_ID: $(cat "$WORK/last.out") rows, expected $want; runs: state|tenants|done|failed|skipped|not_done = ${facts#*|}" >&2
		sql "$TM_DB" -c "SELECT status, sqlstate, min(message) AS message, count(*)
		  FROM tenant_mgr.run_tenants WHERE run_id = $RUN_ID GROUP BY 1, 2 ORDER BY 1, 2" >&2
	fi
}

# tenant_migrate() with nothing pending, best of NOOP_REPEATS: sets NOOP_US.
noop_run() {
	local r
	NOOP_US=
	for ((r = 1; r <= NOOP_REPEATS; r++)); do
		timed_sql "$TM_DB" -c 'SELECT count(*) FROM tenant_mgr.tenant_migrate()'
		expect "rows of a no-op tenant_migrate()" "$(cat "$WORK/last.out")" 0
		if [ -z "$NOOP_US" ] || [ "$ELAPSED_US" -lt "$NOOP_US" ]; then NOOP_US=$ELAPSED_US; fi
	done
}

# One scale measurement over the whole fleet of $1 tenants: a fresh
# migration, a timed fleet run, then the no-op run.  Appends
# "size|us|ok|noop_us" to SCALE_ROWS.  A run that left tenants behind is a
# missed goal; a re-run (not timed) must then catch them up.
SCALE_ROWS=()
scale_point() {
	local size=$1 v
	expect "ready schema tenants" "$(ready_tenants "isolation = 'schema'")" "$size"
	v=$(($(latest_version) + 1))
	register "$v" "c_$v" "ALTER TABLE users ADD COLUMN c_$v int"
	say "scale: migration $v (ADD COLUMN c_$v) onto $size schema tenants"
	timed_fleet_run "$size"
	local us=$ELAPSED_US ok=$RUN_OK
	if [ "$ok" -ne 1 ]; then
		say "scale: re-running to catch up the tenants left behind"
		sql "$TM_DB" -c 'SELECT count(*) FROM tenant_mgr.tenant_migrate()' >/dev/null
	fi
	expect "tenants at version $v" "$(ready_tenants "version = $v")" "$size"
	say "no-op: tenant_migrate() with $size tenants at $v (best of $NOOP_REPEATS)"
	noop_run
	SCALE_ROWS+=("$size|$us|$ok|$NOOP_US")
}

# The value of "label|value" in $WORK/last.out.
labelled() {
	sed -n "s/^$1|//p" "$WORK/last.out"
}

# ------------------------------------------------------------- preparing

say "preparing databases $RAW_DB and $TM_DB"
sql postgres -c "CREATE DATABASE $RAW_DB" -c "CREATE DATABASE $TM_DB"
sql "$TM_DB" -c 'CREATE EXTENSION tenant_mgr'
register_sql "${CREATE_MIGRATIONS[@]}" | write_sql register_create.sql
sql "$TM_DB" -f "$WORK/register_create.sql" >/dev/null
expect "registered migrations" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.migration')" 10
LOCK_TIMEOUT_MS=$(sql_value "$TM_DB" "SELECT setting FROM pg_settings WHERE name = 'tenant_mgr.lock_timeout'")
MAX_WORKERS=$(sql_value "$TM_DB" 'SHOW tenant_mgr.max_workers')
MAX_LOCKS=$(sql_value "$TM_DB" 'SHOW max_locks_per_transaction')

# other work on the machine skews the ratios: the report shows the load
LOAD_BEFORE=$(cut -d ' ' -f 1 /proc/loadavg)

# ------------------------------------------------------------ 1. migrate

say "migrate: creating $N schema tenants and $N raw schemas with 001..010 (not timed)"
for ((i = 1; i <= N; i++)); do
	printf 'BEGIN;\nCREATE SCHEMA raw_%d;\nSET LOCAL search_path = raw_%d;\n' "$i" "$i"
	cat "${CREATE_MIGRATIONS[@]}"
	printf 'COMMIT;\n'
done | write_sql create_raw.sql
sql "$RAW_DB" -f "$WORK/create_raw.sql" >/dev/null
tm_create t_ 1 "$N"
expect "tenants at version 10" "$(ready_tenants 'version = 10')" "$N"

say "migrate: 011 onto $N tenants"
for ((i = 1; i <= N; i++)); do
	printf 'BEGIN;\nSET LOCAL search_path = raw_%d;\n' "$i"
	cat "$NEW_MIGRATION"
	printf 'COMMIT;\n'
done | write_sql migrate_raw.sql
register_sql "$NEW_MIGRATION" | write_sql register_new.sql
sql "$TM_DB" -f "$WORK/register_new.sql" >/dev/null

checkpoint
timed_sql "$RAW_DB" -f "$WORK/migrate_raw.sql"
RAW_MIGRATE_US=$ELAPSED_US
expect "raw schemas with users.last_login_at" "$(sql_value "$RAW_DB" \
	"SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	  JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE n.nspname LIKE 'raw\\_%' AND c.relname = 'users' AND a.attname = 'last_login_at'")" "$N"

timed_fleet_run "$N"
TM_MIGRATE_US=$ELAPSED_US
[ "$RUN_OK" -eq 1 ] || { echo "the fleet run of 011 left tenants behind" >&2; exit 1; }
expect "tenants at version 11" "$(ready_tenants 'version = 11')" "$N"
expect "schemas with users.last_login_at" "$(sql_value "$TM_DB" \
	"SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	  JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE n.nspname LIKE 'tenant\\_t\\_%' AND c.relname = 'users' AND a.attname = 'last_login_at'")" "$N"
expect "problems found by tenant_mgr.verify()" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.verify()')" 0

# ---------------------------------------------------------------- 2. lock

LOCK_TENANT=t_$(((N + 1) / 2))
say "lock: $LOCK_ROWS rows into $LOCK_TENANT's users (not timed)"
sql "$TM_DB" -c "INSERT INTO tenant_$LOCK_TENANT.accounts (name) VALUES ('bench')" \
	-c "INSERT INTO tenant_$LOCK_TENANT.users (account_id, email)
	    SELECT (SELECT min(id) FROM tenant_$LOCK_TENANT.accounts), 'u' || g || '@example.com'
	      FROM generate_series(1, $LOCK_ROWS) g" \
	-c "VACUUM ANALYZE tenant_$LOCK_TENANT.users" >/dev/null

LOCK_VERSION=$(($(latest_version) + 1))
register "$LOCK_VERSION" seen_at "ALTER TABLE users ADD COLUMN seen_at timestamptz NOT NULL DEFAULT clock_timestamp()"

# The client: one pgbench connection reading one row of the tenant's users
# by key, with a per-transaction latency log.  It stops at its first error,
# which the dropped table bench_go causes once the run is over.
sql "$TM_DB" -c 'CREATE TABLE public.bench_go (go boolean)' -c 'INSERT INTO public.bench_go VALUES (true)'
printf 'SELECT u.id FROM tenant_%s.users u, public.bench_go WHERE u.id = 1;\n' "$LOCK_TENANT" |
	write_sql client.sql
say "lock: migration $LOCK_VERSION (ADD COLUMN ... DEFAULT clock_timestamp(), a table rewrite) onto $N tenants while pgbench reads $LOCK_TENANT"
checkpoint
as_user pgbench -n -h "$WORK" -p "$PORT" -c 1 -T 3600 -f "$WORK/client.sql" \
	-l --log-prefix="$WORK/client" "$TM_DB" >"$WORK/pgbench.out" 2>&1 &
CLIENT_PID=$!
# until the client has run for a second
for ((w = 0; w < 100; w++)); do
	if compgen -G "$WORK/client.*" >/dev/null && [ "$(cat "$WORK"/client.* | wc -l)" -gt 0 ]; then break; fi
	sleep 0.1
done
sleep 1
kill -0 "$CLIENT_PID" 2>/dev/null || { cat "$WORK/pgbench.out" >&2; echo "the pgbench client did not start" >&2; exit 1; }
timed_fleet_run "$N"
LOCK_RUN_US=$ELAPSED_US
LOCK_RUN_ID=$RUN_ID
[ "$RUN_OK" -eq 1 ] || { echo "the fleet run of $LOCK_VERSION left tenants behind" >&2; exit 1; }
sleep 1
sql "$TM_DB" -c 'DROP TABLE public.bench_go'
# pgbench exits non-zero: its client was aborted on purpose
wait "$CLIENT_PID" || true
CLIENT_PID=
expect "tenants at version $LOCK_VERSION" "$(ready_tenants "version = $LOCK_VERSION")" "$N"
LOG_FILES=("$WORK"/client.*)
[ -s "${LOG_FILES[0]}" ] || { cat "$WORK/pgbench.out" >&2; echo "no pgbench log" >&2; exit 1; }
# run window (epoch microseconds) and the tenant's own migration
sql "$TM_DB" -tA -c "SELECT 'start|' || round(extract(epoch FROM started_at) * 1e6)::bigint,
	       'end|' || round(extract(epoch FROM finished_at) * 1e6)::bigint
	  FROM tenant_mgr.run WHERE id = $LOCK_RUN_ID" \
	-c "SELECT 'tenant|' || round(extract(epoch FROM duration) * 1e6)::bigint,
	       'attempts|' || attempts
	  FROM tenant_mgr.run_tenant WHERE run_id = $LOCK_RUN_ID AND tenant = '$LOCK_TENANT'" \
	-c "SELECT 'slowest|' || round(extract(epoch FROM max(duration)) * 1e6)::bigint,
	       'median|' || round(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY duration)) * 1e6)::bigint
	  FROM tenant_mgr.run_tenant WHERE run_id = $LOCK_RUN_ID" -F $'\n' >"$WORK/last.out"
RUN_START_US=$(labelled start)
RUN_END_US=$(labelled end)
LOCK_TENANT_US=$(labelled tenant)
LOCK_ATTEMPTS=$(labelled attempts)
SLOWEST_TENANT_US=$(labelled slowest)
MEDIAN_TENANT_US=$(labelled median)
# pgbench log lines: client transaction latency_us script epoch_s epoch_us;
# the transactions that overlapped the run: count, longest, the one before
# the run started and after it ended
read -r CLIENT_TX CLIENT_MAX_US CLIENT_FIRST_US CLIENT_LAST_US < <(
	awk -v s="$RUN_START_US" -v e="$RUN_END_US" '
	{ end = $5 * 1e6 + $6; start = end - $3
	  if (first == "" || end < first) first = end
	  if (end > last) last = end
	  if (end >= s && start <= e) { n++; if ($3 > max) max = $3 } }
	END { printf "%d %.0f %.0f %.0f\n", n, max, first, last }' "${LOG_FILES[@]}")
if [ "$CLIENT_FIRST_US" -gt "$RUN_START_US" ] || [ "$CLIENT_LAST_US" -lt "$RUN_END_US" ]; then
	echo "the pgbench client did not cover the whole run" >&2
	cat "$WORK/pgbench.out" >&2
	exit 1
fi
[ "$CLIENT_TX" -gt 0 ] || { echo "no client transaction during the run" >&2; exit 1; }

# --------------------------------------------------------------- 3. scale

say "scale: the fleet at $N tenants"
scale_point "$N"
say "scale: dropping t_$((SMALL + 1))..t_$N (not timed)"
tm_drop t_ "$((SMALL + 1))" "$N"
scale_point "$SMALL"
say "scale: creating g_$((SMALL + 1))..g_$SCALE (not timed)"
tm_create g_ "$((SMALL + 1))" "$SCALE"
scale_point "$SCALE"
if [ -n "$LARGE" ]; then
	say "scale: creating g_$((SCALE + 1))..g_$LARGE (not timed)"
	tm_create g_ "$((SCALE + 1))" "$LARGE"
	scale_point "$LARGE"
fi

# ------------------------------------------------------------ 4. database

say "database: creating $DBN database tenants and $DBN raw databases with 001..010 (not timed)"
{
	for ((i = 1; i <= DBN; i++)); do
		printf 'CREATE DATABASE rawdb_%d;\n\\c rawdb_%d\n' "$i" "$i"
		for f in "${CREATE_MIGRATIONS[@]}"; do
			printf 'BEGIN;\n'
			cat "$f"
			printf 'COMMIT;\n'
		done
		printf '\\c %s\n' "$RAW_DB"
	done
} | write_sql create_rawdb.sql
sql "$RAW_DB" -f "$WORK/create_rawdb.sql" >/dev/null
for ((i = 1; i <= DBN; i++)); do
	printf "SELECT tenant_mgr.tenant_create('d_%d', 'database') \\\\g /dev/null\n" "$i"
done | write_sql create_tmdb.sql
sql "$TM_DB" -f "$WORK/create_tmdb.sql"
DB_VERSION=$(($(latest_version) + 1))
expect "database tenants ready" "$(ready_tenants "isolation = 'database' AND version = $((DB_VERSION - 1))")" "$DBN"

DB_DDL="ALTER TABLE users ADD COLUMN deleted_at timestamptz; CREATE INDEX users_deleted_at_idx ON users(deleted_at);"
say "database: migration $DB_VERSION onto $DBN database tenants"
for ((i = 1; i <= DBN; i++)); do
	printf '\\c rawdb_%d\nBEGIN;\n%s\nCOMMIT;\n\\c %s\n' "$i" "$DB_DDL" "$RAW_DB"
done | write_sql migrate_rawdb.sql
register "$DB_VERSION" deleted_at "$DB_DDL"

checkpoint
timed_sql "$RAW_DB" -f "$WORK/migrate_rawdb.sql"
RAW_DB_US=$ELAPSED_US
for ((i = 1; i <= DBN; i++)); do
	printf "\\\\c rawdb_%d\nSELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'deleted_at';\n" "$i"
done | write_sql check_rawdb.sql
expect "raw databases with users.deleted_at" "$(sql postgres -tA -f "$WORK/check_rawdb.sql" | grep -c '^1$' || true)" "$DBN"

timed_fleet_run "$DBN" "tenant_mgr.tenant_migrate(pattern => 'd%')"
TM_DB_US=$ELAPSED_US
[ "$RUN_OK" -eq 1 ] || { echo "the fleet run over database tenants left tenants behind" >&2; exit 1; }
expect "database tenants at version $DB_VERSION" "$(ready_tenants "isolation = 'database' AND version = $DB_VERSION")" "$DBN"
for ((i = 1; i <= DBN; i++)); do
	printf "\\\\c tenant_d_%d\nSELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'deleted_at';\n" "$i"
done | write_sql check_tmdb.sql
expect "tenant databases with users.deleted_at" "$(sql postgres -tA -f "$WORK/check_tmdb.sql" | grep -c '^1$' || true)" "$DBN"

# verify() over the whole fleet: an error (such as 53200, out of shared
# memory) fails the benchmark, but after the report
if VERIFY_OUT=$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.verify()' 2>&1); then
	expect "problems found by tenant_mgr.verify()" "$VERIFY_OUT" 0
	VERIFY_ERROR=
else
	VERIFY_ERROR=${VERIFY_OUT//$'\n'/ }
fi
VERIFY_TENANTS=$(ready_tenants)

# the floor of a timed call: SELECT 1 timed as the no-op runs are
FLOOR_US=
for ((r = 1; r <= NOOP_REPEATS; r++)); do
	timed_sql "$TM_DB" -c 'SELECT 1'
	if [ -z "$FLOOR_US" ] || [ "$ELAPSED_US" -lt "$FLOOR_US" ]; then FLOOR_US=$ELAPSED_US; fi
done

# ---------------------------------------------------------------- report

PG_VERSION=$(sql_value postgres 'SHOW server_version')
LOAD_AFTER=$(cut -d ' ' -f 1 /proc/loadavg)
printf '%s\n' "${SCALE_ROWS[@]}" >"$WORK/scale.txt"
awk -F '|' -v n="$N" -v small="$SMALL" -v dbn="$DBN" -v pgv="$PG_VERSION" \
	-v rm="$RAW_MIGRATE_US" -v tm="$TM_MIGRATE_US" -v mg="$MIGRATE_GOAL" \
	-v sg="$SCALE_GOAL" -v ng="$NOOP_GOAL" -v nrep="$NOOP_REPEATS" \
	-v rdb="$RAW_DB_US" -v tdb="$TM_DB_US" -v dg="$DB_GOAL" \
	-v lrun="$LOCK_RUN_US" -v ltenant="$LOCK_TENANT" -v lrows="$LOCK_ROWS" \
	-v lt="$LOCK_TENANT_US" -v latt="$LOCK_ATTEMPTS" -v lto="$LOCK_TIMEOUT_MS" \
	-v lslow="$SLOWEST_TENANT_US" -v lmed="$MEDIAN_TENANT_US" \
	-v ctx="$CLIENT_TX" -v cmax="$CLIENT_MAX_US" \
	-v floor="$FLOOR_US" -v workers="$MAX_WORKERS" -v locks="$MAX_LOCKS" \
	-v cpus="$(nproc)" -v load0="$LOAD_BEFORE" -v load1="$LOAD_AFTER" '
# judged on the figures as printed, so that "0.70x" never reads as a miss
function row(what, tmv, rawv, ratio, goal, met) {
	printf "  %-36s %13s %13s %8s  %-15s %s\n", what, tmv, rawv, ratio, goal, met ? "met" : "MISSED"
}
function ms(us) { return sprintf("%.1f ms", us / 1e3) }
function s(us) { return sprintf("%.2f s", us / 1e6) }
function x(r) { return sprintf("%.2fx", r) }
{ size[NR] = $1; us[NR] = $2; ok[NR] = $3; noop[NR] = $4; if ($1 == small) si = NR; if ($1 > size[li] + 0) li = NR }
END {
	printf "\nfleet benchmark: PostgreSQL %s, %d CPUs, tenant_mgr.max_workers = %d, max_locks_per_transaction = %d\n",
		pgv, cpus, workers, locks
	printf "  raw = one psql session, the same DDL tenant after tenant, one transaction per tenant\n"
	printf "  (database tenants: \\c into each database); tenant_mgr = one tenant_migrate() call\n\n"
	printf "  scale (a fresh ADD COLUMN each; tenant_mgr, one fleet run):\n"
	for (i = 1; i <= NR; i++)
		printf "    %6d tenants  %9.3f s  %7.3f ms/tenant  %s   no-op %8.3f ms  %7.4f ms/tenant\n",
			size[i], us[i] / 1e6, us[i] / 1e3 / size[i], ok[i] ? "no failures" : "FAILURES",
			noop[i] / 1e3, noop[i] / 1e3 / size[i]
	printf "\n  lock: fleet run of %d tenants (ADD COLUMN ... DEFAULT clock_timestamp()) in %.2f s;\n", n, lrun / 1e6
	printf "    pgbench (1 client) reading %s (%d rows): %d queries during the run, longest %.1f ms\n",
		ltenant, lrows, ctx, cmax / 1e3
	printf "    %s migration %.1f ms (%d attempt(s)); per tenant: median %.1f ms, slowest %.1f ms; lock_timeout %d ms\n",
		ltenant, lt / 1e3, latt, lmed / 1e3, lslow / 1e3, lto
	printf "    bound = %s migration + lock_timeout = %.1f ms: %s\n", ltenant, lt / 1e3 + lto,
		cmax / 1e3 < lt / 1e3 + lto ? "holds" : "DOES NOT HOLD"

	printf "\n  %-36s %13s %13s %8s  %-15s %s\n", "measurement", "tenant_mgr", "raw/ref", "ratio", "goal", "result"
	r = sprintf("%.2f", tm / rm)
	row("migrate 011, " n " schema tenants", s(tm), s(rm), r "x", "<= " mg "x", r + 0 <= mg + 0)
	su = us[si] / size[si]; lu = us[li] / size[li]
	r = sprintf("%.2f", lu / su)
	row("scale ms/tenant " size[li] " vs " size[si], sprintf("%.3f ms", lu / 1e3), sprintf("%.3f ms", su / 1e3),
		r "x", "<= " sg "x", r + 0 <= sg + 0)
	allok = 1; for (i = 1; i <= NR; i++) if (!ok[i]) allok = 0
	row("scale failures (all sizes)", allok ? "0" : "some", "-", "-", "0", allok)
	for (i = 1; i <= NR; i++) {
		if (i != si && i != li) continue
		p = sprintf("%.4f", noop[i] / 1e3 / size[i])
		row("no-op ms/tenant, " size[i] " tenants", p " ms", "-", "-", "< " ng " ms", p + 0 < ng + 0)
	}
	ns = noop[si] / size[si]; nl = noop[li] / size[li]
	r = sprintf("%.2f", nl / ns)
	row("no-op flat " size[li] " vs " size[si], sprintf("%.4f ms", nl / 1e3), sprintf("%.4f ms", ns / 1e3),
		r "x", "<= " sg "x", r + 0 <= sg + 0)
	r = sprintf("%.2f", tdb / rdb)
	row("migrate, " dbn " database tenants", s(tdb), s(rdb), r "x", "<= " dg "x", r + 0 <= dg + 0)
	r = sprintf("%.2f", cmax / 1e3 / (lt / 1e3 + lto))
	row("lock: longest client wait", ms(cmax), ms(lt + lto * 1e3), r "x", "< 1x (bound)", cmax / 1e3 < lt / 1e3 + lto)
	printf "\n  ratio = tenant_mgr / raw, or for scale and lock the figure against its reference\n"
	printf "  (ms/tenant at %d; one migration plus lock_timeout); no-op runs are the best of %d,\n", small, nrep
	printf "  and SELECT 1 timed the same way takes %.3f ms (best of %d)\n", floor / 1e3, nrep
	printf "  machine: load average %s before the timed phases, %s after\n", load0, load1
}' "$WORK/scale.txt"

if [ -n "$VERIFY_ERROR" ]; then
	echo "tenant_mgr.verify() over $VERIFY_TENANTS tenants failed: $VERIFY_ERROR" >&2
	exit 1
fi
printf '  tenant_mgr.verify() over %d tenants: no problems\n' "$VERIFY_TENANTS"
