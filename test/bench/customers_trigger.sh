#!/usr/bin/env bash
# test/bench/customers_trigger.sh: the provisioning trigger on a customers
# table against the raw limit, i.e. the same INSERT into a table of the same
# shape without the trigger.
#
# Builds and installs the tree as a fresh machine would, starts a throwaway
# cluster as the unprivileged user (tenant_mgr preloaded, control database
# bench_tm, poll_interval 1 s), registers the fixture migrations 001..010
# (test/fixtures) and measures, in the same run:
#   insert   INSERT INTO <table> (slug) SELECT 'c' || g FROM generate_series(1, N) g
#            into customers_plain (no trigger), customers (the shipped trigger,
#            'name=slug', 'mode=queued': schema tenants) and customers_db
#            ('name=slug', 'isolation=database': always queued).  Each run is
#            BEGIN; INSERT; clock reading; ROLLBACK: what is timed is the
#            INSERT with its trigger work, and the rollback leaves no tenant
#            and no job behind for the launcher.  Median of BENCH_REPEATS runs,
#            interleaved across the three tables.
#   ready    a separate, committed INSERT of BENCH_READY rows into customers
#            (schema tenants) and of BENCH_DB_READY rows into customers_db
#            (database tenants), then tenant_wait() on every tenant: time
#            until all are ready (the launcher creates them after commit, one
#            at a time, each with 001..010).
# Then checks that every tenant is ready at version 10, that the schemas,
# databases and their content exist, that no job is left and that
# tenant_mgr.verify() finds nothing.  Slowness is reported, never failed; a
# functional error (any psql error, wrong counts, a failed job, problems
# found by verify()) exits non-zero.
#
# Usage: sudo test/bench/customers_trigger.sh
#   BENCH_ROWS=N        rows of each timed INSERT (default 10000)
#   BENCH_READY=N       schema tenants in the time-to-ready phase (default 300)
#   BENCH_DB_READY=N    database tenants in the time-to-ready phase (default 10)
#   BENCH_REPEATS=N     timed runs of each INSERT (default 3)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$ROOT/test/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/test/bench/lib.sh"

ROWS=${BENCH_ROWS:-10000}
READY=${BENCH_READY:-300}
DB_READY=${BENCH_DB_READY:-10}
REPEATS=${BENCH_REPEATS:-3}
TM_DB=bench_tm
WAIT_TIMEOUT='30 minutes'	# for tenant_wait(); executors have job_timeout too

positive_int BENCH_ROWS "$ROWS"
positive_int BENCH_READY "$READY"
positive_int BENCH_DB_READY "$DB_READY"
positive_int BENCH_REPEATS "$REPEATS"
WARM_ROWS=$((ROWS < 1000 ? ROWS : 1000))

TREE=
WORK=
trap_exit 'bench_cleanup customers_trigger'

bench_prepare

# A queued database tenant runs two executors (background workers) next to
# the launcher.  poll_interval is only the safety net: a commit that queued
# work wakes the launcher at once.
bench_cluster \
	"max_worker_processes = 16" \
	"shared_preload_libraries = 'tenant_mgr'" \
	"tenant_mgr.database = '$TM_DB'" \
	"tenant_mgr.poll_interval = 1"

# Runs a script file in $TM_DB and keeps its "label|value" lines in
# $WORK/last.out.
run_labelled() {
	sql "$TM_DB" -tA -f "$WORK/$1" >"$WORK/last.out"
}

# The value of "label|value" in $WORK/last.out; fails unless it is an integer.
labelled() {
	local v
	v=$(sed -n "s/^$1|//p" "$WORK/last.out")
	[[ $v =~ ^-?[0-9]+$ ]] || { echo "no integer \"$1\" from psql: \"$v\"" >&2; exit 1; }
	echo "$v"
}

# Microseconds since the psql variable bench_t0, as "label|value".
elapsed_sql() {
	printf "SELECT '%s|' || round(extract(epoch FROM clock_timestamp() - :'bench_t0'::timestamptz) * 1e6)::bigint;\n" "$1"
}

# Every timed phase starts from a checkpoint and from tables without the
# dead rows of earlier rolled-back inserts, so that none pays for another.
# The catalog is then as autovacuum leaves a small one: statistics saying it
# is (nearly) empty, which is what plans prepared in the session see.
settle() {
	sql "$TM_DB" -c 'VACUUM customers_plain, customers, customers_db, tenant_mgr.tenant, tenant_mgr.job'
	checkpoint
}

# The timed INSERT of $2 rows into table $1, inside a transaction that is
# rolled back after the clock is read, followed by what the transaction saw.
insert_sql() {
	local table=$1 rows=$2
	cat <<EOF
BEGIN;
SELECT clock_timestamp() AS bench_t0 \\gset
INSERT INTO $table (slug) SELECT 'c' || g FROM generate_series(1, $rows) g;
$(elapsed_sql elapsed)
SELECT 'rows|' || count(*) FROM $table;
SELECT 'creating|' || count(*) FROM tenant_mgr.tenant WHERE state = 'creating';
SELECT 'queued|' || count(*) FROM tenant_mgr.job WHERE action = 'create' AND state = 'queued';
SELECT 'locks|' || count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
ROLLBACK;
EOF
}

# Nothing queued, running or failed, and no tenant row: what every rolled-back
# insert must leave, and where the ready phases start from.
expect_idle() {
	expect "$1: tenant rows" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.tenant')" 0
	expect "$1: jobs not done" "$(sql_value "$TM_DB" \
		"SELECT count(*) FROM tenant_mgr.job WHERE state <> 'done'")" 0
	expect "$1: intents" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.intent')" 0
}

# Runs the timed INSERT of $3 rows into table $2 (kind $1: plain, schema or
# database), checks what the transaction saw and sets ELAPSED_US and LOCKS.
measure_insert() {
	local kind=$1 table=$2 rows=$3 tenants=$3
	[ "$kind" = plain ] && tenants=0
	insert_sql "$table" "$rows" | write_sql "insert_$table.sql"
	run_labelled "insert_$table.sql"
	ELAPSED_US=$(labelled elapsed)
	LOCKS=$(labelled locks)
	expect "rows in $table inside the transaction" "$(labelled rows)" "$rows"
	expect "tenants 'creating' after the INSERT into $table" "$(labelled creating)" "$tenants"
	expect "create jobs queued by the INSERT into $table" "$(labelled queued)" "$tenants"
	expect_idle "after the rolled-back INSERT into $table"
}

# The middle value of the arguments (the lower one of the middle two).
median() {
	printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"
}

# The committed INSERT of $3 rows named $2<g> into table $1, then
# tenant_wait() on each (the launcher takes jobs in order: waiting on each
# costs nothing more than waiting on the last, and misses none), then when
# the first and the last tenant became ready by the launcher's own clock.
ready_sql() {
	local table=$1 prefix=$2 rows=$3
	local events="WHERE tenant ~ '^${prefix}[0-9]+\$' AND action = 'create' AND status = 'ok'"
	cat <<EOF
SELECT clock_timestamp() AS bench_t0 \\gset
BEGIN;
INSERT INTO $table (slug) SELECT '$prefix' || g FROM generate_series(1, $rows) g;
COMMIT;
$(elapsed_sql enqueued)
SELECT clock_timestamp() AS bench_t1 \\gset
SELECT 'ready|' || count(*) FILTER (WHERE tenant_mgr.tenant_wait('$prefix' || g, '$WAIT_TIMEOUT'))
  FROM generate_series(1, $rows) g;
$(elapsed_sql elapsed)
SELECT 'first|' || round(extract(epoch FROM min(at) - :'bench_t1'::timestamptz) * 1e6)::bigint
  FROM tenant_mgr.event $events;
SELECT 'last|' || round(extract(epoch FROM max(at) - :'bench_t1'::timestamptz) * 1e6)::bigint
  FROM tenant_mgr.event $events;
SELECT 'job|' || round(extract(epoch FROM sum(duration)) * 1e6)::bigint
  FROM tenant_mgr.event $events;
SELECT 'jobs|' || count(*) FROM tenant_mgr.event $events;
EOF
}

# Runs a ready phase and sets READY_* from it.
measure_ready() {
	local table=$1 prefix=$2 rows=$3
	ready_sql "$table" "$prefix" "$rows" | write_sql "ready_$table.sql"
	settle
	run_labelled "ready_$table.sql"
	expect "tenants of $table for which tenant_wait() returned true" "$(labelled ready)" "$rows"
	expect "create events of the tenants of $table" "$(labelled jobs)" "$rows"
	READY_ENQUEUE_US=$(labelled enqueued)
	READY_TOTAL_US=$(labelled elapsed)
	READY_FIRST_US=$(labelled first)
	READY_LAST_US=$(labelled last)
	READY_JOB_US=$(labelled job)
}

say "preparing database $TM_DB"
sql postgres -c "CREATE DATABASE $TM_DB"
sql "$TM_DB" -c 'CREATE EXTENSION tenant_mgr'
register_sql "${CREATE_MIGRATIONS[@]}" | write_sql register_create.sql
sql "$TM_DB" -f "$WORK/register_create.sql" >/dev/null
expect "registered migrations" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.migration')" 10
write_sql tables.sql <<'EOF'
CREATE TABLE customers_plain (id serial PRIMARY KEY, slug text UNIQUE, plan text);
CREATE TABLE customers (id serial PRIMARY KEY, slug text UNIQUE, plan text);
CREATE TRIGGER provision
  AFTER INSERT OR UPDATE OF slug OR DELETE ON customers
  FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug', 'mode=queued');
CREATE TABLE customers_db (id serial PRIMARY KEY, slug text UNIQUE, plan text);
CREATE TRIGGER provision
  AFTER INSERT OR UPDATE OF slug OR DELETE ON customers_db
  FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug', 'isolation=database');
EOF
sql "$TM_DB" -f "$WORK/tables.sql"

# One tenant of each kind through the whole trigger (INSERT, ready, DELETE,
# dropped), then one small rolled-back INSERT into each table.
say "warming up (one tenant of each kind created and dropped, $WARM_ROWS-row inserts rolled back)"
write_sql warm.sql <<EOF
INSERT INTO customers (slug) VALUES ('warm_s');
INSERT INTO customers_db (slug) VALUES ('warm_d');
SELECT 'created|' || count(*) FILTER (WHERE tenant_mgr.tenant_wait(n, '$WAIT_TIMEOUT'))
  FROM unnest(ARRAY['warm_s', 'warm_d']) n;
SELECT 'ready|' || count(*) FROM tenant_mgr.tenant WHERE state = 'ready' AND version = 10;
DELETE FROM customers;
DELETE FROM customers_db;
SELECT 'dropped|' || count(*) FILTER (WHERE tenant_mgr.tenant_wait(n, '$WAIT_TIMEOUT'))
  FROM unnest(ARRAY['warm_s', 'warm_d']) n;
EOF
run_labelled warm.sql
expect "warm-up tenants created" "$(labelled created)" 2
expect "warm-up tenants ready at version 10" "$(labelled ready)" 2
expect "warm-up tenants dropped" "$(labelled dropped)" 2
expect "schemas left by the warm-up" "$(sql_value "$TM_DB" \
	"SELECT count(*) FROM pg_namespace WHERE nspname LIKE '%warm%'")" 0
expect "databases left by the warm-up" "$(sql_value postgres \
	"SELECT count(*) FROM pg_database WHERE datname LIKE '%warm%' OR datname LIKE 'tenant_mgr_drop_%'")" 0
expect_idle "after the warm-up"
measure_insert plain customers_plain "$WARM_ROWS"
measure_insert schema customers "$WARM_ROWS"
measure_insert database customers_db "$WARM_ROWS"

# other work on the machine skews the ratios: the report shows the load
LOAD_BEFORE=$(cut -d ' ' -f 1 /proc/loadavg)

say "insert: $ROWS rows into each table, $REPEATS runs each, every one rolled back"
RAW_RUNS=()
SCHEMA_RUNS=()
DB_RUNS=()
for ((r = 1; r <= REPEATS; r++)); do
	settle
	measure_insert plain customers_plain "$ROWS"
	RAW_RUNS+=("$ELAPSED_US")
	settle
	measure_insert schema customers "$ROWS"
	SCHEMA_RUNS+=("$ELAPSED_US")
	# queued schema tenants take no per-tenant lock in the inserting transaction
	expect "advisory locks held by the queued INSERT into customers" "$LOCKS" 0
	settle
	measure_insert database customers_db "$ROWS"
	DB_RUNS+=("$ELAPSED_US")
	DB_LOCKS=$LOCKS
	echo "  run $r: raw $((RAW_RUNS[-1] / 1000)) ms, schema queued $((SCHEMA_RUNS[-1] / 1000)) ms, database queued $((DB_RUNS[-1] / 1000)) ms"
done
RAW_US=$(median "${RAW_RUNS[@]}")
SCHEMA_US=$(median "${SCHEMA_RUNS[@]}")
DB_US=$(median "${DB_RUNS[@]}")

say "ready: $READY schema tenants (mode=queued) inserted and committed, until all are ready"
measure_ready customers s "$READY"
S_ENQUEUE_US=$READY_ENQUEUE_US S_TOTAL_US=$READY_TOTAL_US S_FIRST_US=$READY_FIRST_US
S_LAST_US=$READY_LAST_US S_JOB_US=$READY_JOB_US

say "ready: $DB_READY database tenants inserted and committed, until all are ready"
measure_ready customers_db d "$DB_READY"
D_ENQUEUE_US=$READY_ENQUEUE_US D_TOTAL_US=$READY_TOTAL_US D_FIRST_US=$READY_FIRST_US
D_LAST_US=$READY_LAST_US D_JOB_US=$READY_JOB_US

LOAD_AFTER=$(cut -d ' ' -f 1 /proc/loadavg)

say "checking the tenants"
TENANTS=$((READY + DB_READY))
READY_TENANTS=$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenants WHERE state = 'ready'")
NOT_READY=$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenant WHERE state <> 'ready'")
SCHEMAS=$(sql_value "$TM_DB" "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' AND nspname <> 'tenant_mgr'")
DATABASES=$(sql_value postgres "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\\_%'")
PROBLEMS=$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.verify()')
expect "ready tenants" "$READY_TENANTS" "$TENANTS"
expect "tenants not ready" "$NOT_READY" 0
expect "schema tenants ready at version 10" "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenants
	WHERE name ~ '^s[0-9]+\$' AND isolation = 'schema' AND state = 'ready' AND version = 10")" "$READY"
expect "database tenants ready at version 10" "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.tenants
	WHERE name ~ '^d[0-9]+\$' AND isolation = 'database' AND state = 'ready' AND version = 10")" "$DB_READY"
expect "tenant schemas" "$SCHEMAS" "$READY"
expect "tenant databases" "$DATABASES" "$DB_READY"
expect "databases being dropped" "$(sql_value postgres \
	"SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant_mgr_drop_%'")" 0
# the content of 001..010: every tenant has the two rows that 010 seeds
expect "tenant schemas with the settings of 010" "$(sql_value "$TM_DB" \
	"SELECT count(*) FROM generate_series(1, $READY) g,
	   LATERAL (SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.settings', 'tenant_s' || g), false, true, '')))[1]::text::int AS c) x
	 WHERE x.c = 2")" "$READY"
for ((i = 1; i <= DB_READY; i++)); do
	printf '\\c tenant_d%d\nSELECT count(*) = 2 FROM public.settings;\n' "$i"
done | write_sql content_check.sql
expect "tenant databases with the settings of 010" "$(sql postgres -tA -f "$WORK/content_check.sql" | grep -c '^t$' || true)" "$DB_READY"
expect "create jobs done" "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.job
	WHERE tenant ~ '^[sd][0-9]+\$' AND action = 'create' AND state = 'done'")" "$TENANTS"
expect "jobs not done" "$(sql_value "$TM_DB" "SELECT count(*) FROM tenant_mgr.job WHERE state <> 'done'")" 0
expect "intents left" "$(sql_value "$TM_DB" 'SELECT count(*) FROM tenant_mgr.intent')" 0
expect "problems found by tenant_mgr.verify()" "$PROBLEMS" 0

# Report.  Insert: medians of in-session wall-clock times of the INSERT
# statement; ready: from the start of the inserting transaction or from its
# commit to the last tenant_wait() returning, in the same session.
PG_VERSION=$(sql_value postgres 'SHOW server_version')
awk -v n="$ROWS" -v reps="$REPEATS" -v pgv="$PG_VERSION" \
	-v raw="$RAW_US" -v sch="$SCHEMA_US" -v db="$DB_US" \
	-v rawruns="${RAW_RUNS[*]}" -v schruns="${SCHEMA_RUNS[*]}" -v dbruns="${DB_RUNS[*]}" \
	-v dblocks="$DB_LOCKS" \
	-v sm="$READY" -v se="$S_ENQUEUE_US" -v st="$S_TOTAL_US" -v sf="$S_FIRST_US" \
	-v sl="$S_LAST_US" -v sj="$S_JOB_US" \
	-v dm="$DB_READY" -v de="$D_ENQUEUE_US" -v dt="$D_TOTAL_US" -v df="$D_FIRST_US" \
	-v dl="$D_LAST_US" -v dj="$D_JOB_US" \
	-v tready="$READY_TENANTS" -v nsch="$SCHEMAS" -v ndb="$DATABASES" -v probs="$PROBLEMS" \
	-v cpus="$(nproc)" -v load0="$LOAD_BEFORE" -v load1="$LOAD_AFTER" '
function ms(us) { return sprintf("%.1f", us / 1e3) }
function runs(list,    a, k, i, s) {
	k = split(list, a, " ")
	for (i = 1; i <= k; i++) s = s (i > 1 ? " " : "") ms(a[i])
	return s
}
function insert_line(side, us, list) {
	printf "    %-24s %10.1f ms  %8.2f µs/row", side, us / 1e3, us / n
	if (side != "raw (no trigger)")
		printf "  %7.2fx raw  +%.2f µs/row", us / raw, (us - raw) / n
	printf "   runs: %s ms\n", runs(list)
}
function ready_block(title, m, e, t, f, l, j) {
	printf "\n  %s: %d tenants, one committed INSERT, then tenant_wait() on each\n", title, m
	printf "    enqueue (INSERT + COMMIT)      %9.3f s  %9.2f ms/tenant\n", e / 1e6, e / 1e3 / m
	printf "    first tenant ready after commit %8.3f s\n", f / 1e6
	printf "    all ready after commit         %9.3f s  %9.2f ms/tenant\n", (t - e) / 1e6, (t - e) / 1e3 / m
	printf "    all ready from BEGIN (total)   %9.3f s  %9.2f ms/tenant\n", t / 1e6, t / 1e3 / m
	printf "    last ready by the launcher     %9.3f s after commit\n", l / 1e6
	printf "    launcher create time (events)  %9.3f s  %9.2f ms/tenant\n", j / 1e6, j / 1e3 / m
}
BEGIN {
	printf "\ncustomers_trigger benchmark: %d-row INSERT, PostgreSQL %s\n", n, pgv
	printf "  INSERT INTO <table> (slug) SELECT '\''c'\'' || g FROM generate_series(1, %d) g\n", n
	printf "  each run: BEGIN; INSERT; clock; ROLLBACK (the rollback is not timed and leaves no jobs)\n"
	printf "  median of %d runs, interleaved; raw = same table shape without the trigger\n\n", reps
	insert_line("raw (no trigger)", raw, rawruns)
	insert_line("schema, mode=queued", sch, schruns)
	insert_line("database (queued)", db, dbruns)
	printf "    (advisory locks held at the end of the INSERT: schema queued 0, database %d)\n", dblocks
	ready_block("schema tenants, mode=queued, 001..010", sm, se, st, sf, sl, sj)
	ready_block("database tenants, queued, 001..010", dm, de, dt, df, dl, dj)
	printf "\n  correctness: %d tenants ready, %d tenant schemas, %d tenant databases, verify() problems %d, no job left\n",
		tready, nsch, ndb, probs
	printf "\n  machine: %d CPUs, load average %s before the timed phases, %s after\n", cpus, load0, load1
}'
