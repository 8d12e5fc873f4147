#!/usr/bin/env bash
# test/bench/citus.sh: a fleet migration in Citus mode (schema tenants on
# two workers, tenant_mgr on the coordinator) against the same on one
# server, and against the raw limit on each: one psql session running the
# same DDL by hand.
#
# Builds and installs the tree, starts four throwaway clusters as the
# unprivileged user: one server (tenant_mgr preloaded), and a Citus
# coordinator with two workers (citus and tenant_mgr preloaded), all on
# this machine.  On each it creates N schema tenants with the fixture
# migrations 001..010 (tenant_create, four psql sessions at once, not
# timed) and N raw schemas with the same DDL (distributed schemas on
# Citus), then times 011 (test/fixtures) onto all of them:
#   tm       tenant_migrate(): executors, one transaction per migration
#            per tenant, as each tenant's owner, with its ledger row
#   raw      one psql session, one transaction per schema, as superuser
#   raw_own  the same, each transaction as the schema's owner role (SET
#            LOCAL ROLE): Citus then opens a connection to the worker as
#            that role, which is what tenant_mgr's migrations pay for
# and prints the times per tenant and the ratios.  All four clusters share
# the machine's cores, so no speed-up is to be expected from the workers
# here (on 2 cores, a slow-down): the point is the ratio and where the time
# goes.  A functional error (psql error, wrong counts, tenants not at the
# new version, tables left local, verify() problems) exits non-zero.
#
# Usage: flock /tmp/tm-test.lock bash test/bench/citus.sh   (as root)
#   BENCH_TENANTS=N   tenants and raw schemas on each side (default 300)
#
# Needs Citus installed (../shared/vendor/build-citus.sh).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$ROOT/test/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/test/bench/lib.sh"

N=${BENCH_TENANTS:-300}
positive_int BENCH_TENANTS "$N"
[ -f "$("$PG_BINDIR/pg_config" --pkglibdir)/citus.so" ] ||
	{ echo "Citus is not installed: run ../shared/vendor/build-citus.sh first" >&2; exit 1; }

TREE=
WORK=
DIRS=()
citus_cleanup() {
	local rc=$? d
	for d in "${DIRS[@]}"; do
		if [ "$rc" -ne 0 ] && [ -s "$d/server.log" ]; then
			echo "--- last lines of $d/server.log ---" >&2
			tail -n 15 "$d/server.log" >&2
		fi
		cluster_stop "$d" immediate
		rm -rf "$d"
	done
	[ -n "$TREE" ] && rm -rf "$TREE"
	[ "$rc" -eq 0 ] || echo "citus: FAILED (exit $rc)" >&2
	exit "$rc"
}
trap_exit citus_cleanup

bench_prepare

# start_node NAME PRELOAD: a cluster in a directory of its own (also its
# socket directory, which is how Citus names the node); prints "dir port".
NEXT_PORT=5490
start_node() {
	local name=$1 preload=$2 dir port
	port=$(seq "$NEXT_PORT" 5589 | free_port) || { echo "no free port" >&2; exit 1; }
	NEXT_PORT=$((port + 1))
	dir=$(cluster_dir "tenant_mgr_bench_$name")
	cluster_create "$dir" "$port" \
		"shared_preload_libraries = '$preload'" \
		"citus.local_hostname = '$dir'" \
		"tenant_mgr.database = 'postgres'" \
		"max_worker_processes = 24" \
		"max_connections = 200"
	[ "$preload" = tenant_mgr ] && sed -i '/^citus\./d' "$dir/data/postgresql.conf"
	cluster_start "$dir"
	echo "$dir $port"
}

say "starting one server, a Citus coordinator and two Citus workers"
read -r ONE_DIR ONE_PORT <<<"$(start_node one tenant_mgr)"
DIRS+=("$ONE_DIR")
read -r CO_DIR CO_PORT <<<"$(start_node coord citus,tenant_mgr)"
DIRS+=("$CO_DIR")
read -r W1_DIR W1_PORT <<<"$(start_node w1 citus,tenant_mgr)"
DIRS+=("$W1_DIR")
read -r W2_DIR W2_PORT <<<"$(start_node w2 citus,tenant_mgr)"
DIRS+=("$W2_DIR")
WORK=$ONE_DIR
cd "$WORK"

# psql on a side: one (ONE) or citus (the coordinator)
on() {
	local side=$1
	shift
	if [ "$side" = one ]; then
		cluster_psql "$ONE_DIR" "$ONE_PORT" -q -v ON_ERROR_STOP=1 -d postgres "$@"
	else
		cluster_psql "$CO_DIR" "$CO_PORT" -q -v ON_ERROR_STOP=1 -d postgres "$@"
	fi
}
value() { on "$1" -tA -c "$2"; }

for d in "$W1_DIR $W1_PORT" "$W2_DIR $W2_PORT"; do
	read -r dir port <<<"$d"
	cluster_psql "$dir" "$port" -q -v ON_ERROR_STOP=1 -d postgres -c 'CREATE EXTENSION citus'
done
on citus -c 'CREATE EXTENSION citus' \
	-c "SELECT citus_set_coordinator_host('$CO_DIR', $CO_PORT)" \
	-c "SELECT citus_add_node('$W1_DIR', $W1_PORT)" \
	-c "SELECT citus_add_node('$W2_DIR', $W2_PORT)" >/dev/null
for side in one citus; do
	on "$side" -c 'CREATE EXTENSION tenant_mgr'
	register_sql "${CREATE_MIGRATIONS[@]}" | write_sql register.sql
	on "$side" -f "$WORK/register.sql" >/dev/null
done
expect "Citus mode on the coordinator" "$(value citus 'SHOW tenant_mgr.citus')" on

# ---------------------------------------------------------------- creating

JOBS=4
create_side() {
	local side=$1 j i pids=()
	for ((j = 0; j < JOBS; j++)); do
		for ((i = 1 + j; i <= N; i += JOBS)); do
			printf "SELECT tenant_mgr.tenant_create('t%d') \\\\g /dev/null\n" "$i"
		done | write_sql "create_${side}_$j.sql"
		on "$side" -f "$WORK/create_${side}_$j.sql" &
		pids+=($!)
	done
	for j in "${pids[@]}"; do
		wait "$j" || { echo "creating tenants on $side failed" >&2; exit 1; }
	done
}

# raw schemas raw1..rawN with 001..010, owned by role raw_owner<i> (LOGIN,
# for Citus), distributed on Citus
raw_create_side() {
	local side=$1 i
	{
		# one connection per role and worker would stay cached (see citus.c)
		[ "$side" = citus ] && echo "SET citus.enable_schema_based_sharding = on; SET citus.max_cached_conns_per_worker = 0;"
		for ((i = 1; i <= N; i++)); do
			printf 'CREATE ROLE raw_owner%d LOGIN;\nCREATE SCHEMA raw%d AUTHORIZATION raw_owner%d;\n' "$i" "$i" "$i"
		done
	} | write_sql "raw_schemas_$side.sql"
	on "$side" -f "$WORK/raw_schemas_$side.sql"
	{
		[ "$side" = citus ] && echo "SET citus.max_cached_conns_per_worker = 0;"
		for ((i = 1; i <= N; i++)); do
			printf 'BEGIN;\nSET LOCAL ROLE raw_owner%d;\nSET LOCAL search_path = raw%d;\n' "$i" "$i"
			cat "${CREATE_MIGRATIONS[@]}"
			printf 'COMMIT;\n'
		done
	} | write_sql "raw_create_$side.sql"
	on "$side" -f "$WORK/raw_create_$side.sql" >/dev/null
}

for side in one citus; do
	say "$side: creating $N schema tenants and $N raw schemas with 001..010 (not timed)"
	create_side "$side"
	expect "$side: ready tenants at 10" \
		"$(value "$side" "SELECT count(*) FROM tenant_mgr.tenant WHERE state = 'ready' AND version = 10")" "$N"
	raw_create_side "$side"
done
# 11 tables each (ledger included) on Citus, all tenant tables; raw: 10
expect "citus: tenant tables of the tenants" \
	"$(value citus "SELECT count(*) FROM citus_tables WHERE citus_table_type = 'schema' AND table_name::text LIKE 'tenant\_t%'")" \
	"$((N * 11))"
expect "citus: tenant tables of the raw schemas" \
	"$(value citus "SELECT count(*) FROM citus_tables WHERE citus_table_type = 'schema' AND table_name::text LIKE 'raw%'")" \
	"$((N * 10))"
say "citus: tenants per worker: $(value citus "SELECT string_agg(node || '=' || n, ' ') FROM
	(SELECT node, count(*) n FROM tenant_mgr.placement GROUP BY 1 ORDER BY 1) p" | sed "s|$W1_DIR|w1|; s|$W2_DIR|w2|")"

# ---------------------------------------------------------------- timing

declare -A US
for side in one citus; do
	WORK=$ONE_DIR
	on "$side" -c 'CHECKPOINT'
	say "$side: tenant_migrate() of 011 onto $N tenants"
	printf "\\\\set up \`cat '%s'\`\nSELECT tenant_mgr.migration_add(11, 'new', :'up');\n" "$NEW_MIGRATION" |
		write_sql register_new.sql
	on "$side" -f "$WORK/register_new.sql" >/dev/null
	if [ "$side" = one ]; then port=$ONE_PORT dir=$ONE_DIR; else port=$CO_PORT dir=$CO_DIR; fi
	WORK=$dir PORT=$port timed_sql postgres -c 'SELECT count(*) FROM tenant_mgr.tenant_migrate()'
	US[$side.tm]=$ELAPSED_US
	expect "$side: tenants at 11" \
		"$(value "$side" "SELECT count(*) FROM tenant_mgr.tenant WHERE version = 11")" "$N"

	for mode in raw raw_own; do
		{
			[ "$side" = citus ] && [ "$mode" = raw_own ] && echo "SET citus.max_cached_conns_per_worker = 0;"
			for ((i = 1; i <= N; i++)); do
				printf 'BEGIN;\n'
				[ "$mode" = raw_own ] && printf 'SET LOCAL ROLE raw_owner%d;\n' "$i"
				printf 'SET LOCAL search_path = raw%d;\n' "$i"
				if [ "$mode" = raw ]; then
					cat "$NEW_MIGRATION"
				else
					# the same DDL again, undone, so that raw_own times it too
					sed 's/ADD COLUMN last_login_at/ADD COLUMN last_login_at2/; s/users_last_login_idx/users_last_login_idx2/; s/(last_login_at)/(last_login_at2)/' "$NEW_MIGRATION"
				fi
				printf 'COMMIT;\n'
			done
		} >"$dir/${mode}_migrate.sql"
		chmod 644 "$dir/${mode}_migrate.sql"
		on "$side" -c 'CHECKPOINT'
		say "$side: $mode: the same DDL by psql onto $N schemas"
		WORK=$dir PORT=$port timed_sql postgres -f "$dir/${mode}_migrate.sql"
		US[$side.$mode]=$ELAPSED_US
	done
done

expect "citus: tables left on the coordinator" \
	"$(value citus "SELECT count(*) FROM pg_class c JOIN tenant_mgr.tenant t ON t.object_oid = c.relnamespace
	  WHERE c.relkind = 'r' AND c.oid NOT IN (SELECT logicalrelid FROM pg_dist_partition)")" 0
expect "citus: verify() problems" "$(value citus 'SELECT count(*) FROM tenant_mgr.verify()')" 0
expect "one: verify() problems" "$(value one 'SELECT count(*) FROM tenant_mgr.verify()')" 0

# ---------------------------------------------------------------- report

ms() { awk -v us="$1" -v n="$N" 'BEGIN { printf "%8.0f ms  %6.2f ms/tenant", us / 1000, us / 1000 / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
echo
echo "fleet migration of 011 onto $N schema tenants ($(nproc) cores, all clusters on this machine)"
printf '  one server   tenant_migrate()   %s\n' "$(ms "${US[one.tm]}")"
printf '  one server   raw psql           %s\n' "$(ms "${US[one.raw]}")"
printf '  one server   raw psql as owner  %s\n' "$(ms "${US[one.raw_own]}")"
printf '  Citus 2 wkr  tenant_migrate()   %s\n' "$(ms "${US[citus.tm]}")"
printf '  Citus 2 wkr  raw psql           %s\n' "$(ms "${US[citus.raw]}")"
printf '  Citus 2 wkr  raw psql as owner  %s\n' "$(ms "${US[citus.raw_own]}")"
echo "ratios:"
echo "  Citus / one server, tenant_migrate()          $(ratio "${US[citus.tm]}" "${US[one.tm]}")"
echo "  Citus / one server, raw psql                  $(ratio "${US[citus.raw]}" "${US[one.raw]}")"
echo "  tenant_migrate() / raw psql, one server       $(ratio "${US[one.tm]}" "${US[one.raw]}")"
echo "  tenant_migrate() / raw psql, Citus            $(ratio "${US[citus.tm]}" "${US[citus.raw]}")"
echo "  tenant_migrate() / raw psql as owner, Citus   $(ratio "${US[citus.tm]}" "${US[citus.raw_own]}")"
echo "  raw as owner / raw as superuser, Citus        $(ratio "${US[citus.raw_own]}" "${US[citus.raw]}")"
