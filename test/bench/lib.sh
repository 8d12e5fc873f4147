# shellcheck shell=bash
# test/bench/lib.sh: helpers shared by the benchmarks (test/bench/*.sh).
# Sourced, not run, after test/lib.sh, whose cluster helpers it uses.
#
# Each benchmark sets TREE to its staged tree; bench_cluster sets WORK, the
# cluster's directory, which also holds the benchmark's scratch files, and
# PORT.

# Exits with status 2 unless $2, the value of setting $1, is a positive integer.
positive_int() {
	if ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
		echo "$1 must be a positive integer, not \"$2\"" >&2
		exit 2
	fi
}

# The EXIT trap of the benchmark named $1: stops the cluster at once, shows
# the end of the server log if the benchmark failed, and removes all it made.
bench_cleanup() {
	local rc=$? name=$1
	cluster_stop "$WORK" immediate
	if [ "$rc" -ne 0 ]; then
		echo "$name: FAILED (exit $rc)" >&2
		if [ -n "$WORK" ] && [ -s "$WORK/server.log" ]; then
			echo "--- last lines of the server log ---" >&2
			tail -n 30 "$WORK/server.log" >&2
		fi
	fi
	[ -n "$WORK" ] && rm -rf "$WORK"
	[ -n "$TREE" ] && rm -rf "$TREE"
	exit "$rc"
}

# Sets CREATE_MIGRATIONS to the fixture migrations 001..$2 in directory $1,
# exactly one file per version.
fixture_migrations() {
	local dir=$1 last=$2 v f
	CREATE_MIGRATIONS=()
	for ((v = 1; v <= last; v++)); do
		f=$(printf '%s/%03d_' "$dir" "$v")
		f=$(compgen -G "${f}*.sql" || true)
		if [ -z "$f" ] || [ "$(wc -l <<<"$f")" -ne 1 ]; then
			echo "expected exactly one fixture migration $(printf '%03d' "$v")_*.sql in $dir" >&2
			exit 1
		fi
		CREATE_MIGRATIONS+=("$f")
	done
}

# The raw side of creating schema tenants: the same DDL as 001..010, one
# transaction per schema ($1$2 .. $1$3), as a careful DBA would.
raw_create_sql() {
	local prefix=$1 from=$2 to=$3 i
	for ((i = from; i <= to; i++)); do
		printf 'BEGIN;\nCREATE SCHEMA %s%d;\nSET LOCAL search_path = %s%d;\n' \
			"$prefix" "$i" "$prefix" "$i"
		cat "${CREATE_MIGRATIONS[@]}"
		printf 'COMMIT;\n'
	done
}

# Starts the benchmark cluster with the given postgresql.conf lines and sets
# PORT and WORK.  WORK is also the working directory from then on: runuser
# keeps the cwd, and the cluster user must be able to enter it.
bench_cluster() {
	PORT=$(seq 5490 5589 | free_port) || { echo "no free port in 5490..5589" >&2; exit 1; }
	WORK=$(cluster_dir tenant_mgr_bench)
	cd "$WORK" || exit
	say "starting a throwaway cluster in $WORK (port $PORT)"
	cluster_create "$WORK" "$PORT" "$@"
	cluster_start "$WORK"
}

# psql as the cluster user: no psqlrc, quiet, and any error is fatal
sql() {
	local db=$1
	shift
	cluster_psql "$WORK" "$PORT" -q -v ON_ERROR_STOP=1 -d "$db" "$@"
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

# Saves stdin as $WORK/$1, readable by psql running as the cluster user.
write_sql() {
	cat >"$WORK/$1"
	chmod 644 "$WORK/$1"
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

# A checkpoint before each timed phase, so that none pays for the previous one.
checkpoint() { sql postgres -c 'CHECKPOINT'; }

# Runs psql with the given arguments between two clock readings taken in the
# same psql run, so that neither runuser (~0.1 s here) nor the first
# connection counts.  The start is kept in the psql variable bench_t0, which
# survives \c (a raw side may switch databases), and both readings come from
# the same server clock.  Sets ELAPSED_US; leaves what the arguments printed
# in $WORK/last.out.  The two clock scripts are written on first use.
timed_sql() {
	local db=$1
	shift
	if [ ! -f "$WORK/clock_start.sql" ]; then
		echo "SELECT clock_timestamp() AS bench_t0 \\gset" | write_sql clock_start.sql
		echo "SELECT round(extract(epoch FROM clock_timestamp() - :'bench_t0'::timestamptz) * 1e6)::bigint;" |
			write_sql clock_stop.sql
	fi
	sql "$db" -tA -f "$WORK/clock_start.sql" "$@" -f "$WORK/clock_stop.sql" >"$WORK/timed.out"
	ELAPSED_US=$(tail -n 1 "$WORK/timed.out")
	head -n -1 "$WORK/timed.out" >"$WORK/last.out"
	[[ $ELAPSED_US =~ ^[0-9]+$ ]] || { echo "no elapsed time from psql: \"$ELAPSED_US\"" >&2; exit 1; }
}

# What every benchmark does first: installs what is missing, builds and
# installs a staged copy of the tree (TREE, which the EXIT trap removes),
# and sets FIXTURES, CREATE_MIGRATIONS (001..010) and NEW_MIGRATION (011).
bench_prepare() {
	ensure_deps
	TREE=$(stage_tree "$ROOT")
	build_install "$TREE"
	FIXTURES=$TREE/test/fixtures
	fixture_migrations "$FIXTURES" 10
	NEW_MIGRATION=$FIXTURES/011_new.sql
	[ -f "$NEW_MIGRATION" ] || { echo "missing $NEW_MIGRATION" >&2; exit 1; }
}
