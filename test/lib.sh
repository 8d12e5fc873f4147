# shellcheck shell=bash
# test/lib.sh: helpers shared by check.sh, demo.sh and the benchmarks.
# Sourced, not run.  Everything here works as root on a fresh Debian
# bookworm machine; clusters run as an unprivileged user because initdb
# refuses root.

PG_MAJOR=${PG_MAJOR:-15}
PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
export PATH="$PG_BINDIR:$PATH"
TM_USER=${TM_USER:-postgres}

say() { printf '\n==> %s\n' "$*"; }

# Installs what building and testing need, only when something is missing.
ensure_deps() {
	local missing=()
	[ -x "$PG_BINDIR/postgres" ] || missing+=("postgresql-$PG_MAJOR")
	[ -f "/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/makefiles/pgxs.mk" ] || missing+=("postgresql-server-dev-$PG_MAJOR")
	perl -MIPC::Run -e 1 2>/dev/null || missing+=(libipc-run-perl)
	command -v make >/dev/null && command -v gcc >/dev/null || missing+=(build-essential)
	command -v prove >/dev/null || missing+=(perl)
	# PGXS also emits LLVM bitcode for JIT with Debian's clang-14
	command -v clang-14 >/dev/null || missing+=(clang-14 llvm-14)
	command -v runuser >/dev/null || missing+=(util-linux)
	if [ ${#missing[@]} -gt 0 ]; then
		if [ "$(id -u)" -ne 0 ]; then
			echo "missing packages: ${missing[*]}; run this script as root to install them" >&2
			exit 1
		fi
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
	fi
	if ! id "$TM_USER" >/dev/null 2>&1; then
		useradd --system --create-home "$TM_USER"
	fi
}

# Runs a command as the unprivileged cluster user (or as is, if not root).
as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$TM_USER" -- env PATH="$PATH" "$@"
	else
		"$@"
	fi
}

# Copies the source tree (without .git and build output) to a fresh
# directory owned by the cluster user and prints its path.
stage_tree() {
	local src=$1 dst
	dst=$(mktemp -d /tmp/tenant_mgr.XXXXXX)
	(cd "$src" && tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=results --exclude=tmp_check --exclude=tmp_check_iso \
		--exclude=tmp_check_regress --exclude=output_iso -cf - .) |
		(cd "$dst" && tar -xf -)
	chmod 755 "$dst"
	[ "$(id -u)" -eq 0 ] && chown -R "$TM_USER" "$dst"
	echo "$dst"
}

# Builds in a staged tree as the cluster user, then installs as root.
build_install() {
	local dir=$1
	say "building tenant_mgr"
	as_user make -C "$dir" -s COPT="-Werror" >/dev/null
	say "installing into $("$PG_BINDIR/pg_config" --pkglibdir)"
	make -C "$dir" -s install >/dev/null
}

# Runs "$1" on exit, and makes INT and TERM exit too: without that, an
# interrupt would skip the EXIT trap and leak the cluster.
trap_exit() {
	# shellcheck disable=SC2064 # $1 is the command, expanded now on purpose
	trap "$1" EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Throwaway clusters run as $TM_USER, each in a directory of its own that is
# also its socket directory; the server log is DIR/server.log.

# Prints the first port read from stdin that no server uses: free of TCP
# listeners and of sockets in the usual places, so that no other cluster on
# the machine shares the socket's name or the shared memory key.
free_port() {
	local ports p
	mapfile -t ports	# all of stdin first, so the writer never gets SIGPIPE
	for p in "${ports[@]}"; do
		if [ ! -e "/tmp/.s.PGSQL.$p" ] && [ ! -e "/var/run/postgresql/.s.PGSQL.$p" ] &&
			! (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# Prints a fresh directory /tmp/$1.XXXXXX owned by the cluster user.
cluster_dir() {
	as_user mktemp -d "/tmp/$1.XXXXXX"
}

# Creates a cluster in DIR/data for port PORT, reachable only through the
# socket in DIR; further arguments are appended to postgresql.conf as lines.
# No fsync during initdb: the cluster is thrown away.
cluster_create() {
	local dir=$1 port=$2
	shift 2
	as_user initdb -D "$dir/data" -A trust -E UTF8 --no-locale --no-sync >/dev/null
	{
		printf '\n# throwaway cluster (test/lib.sh)\n'
		printf '%s\n' "port = $port" "listen_addresses = ''" "unix_socket_directories = '$dir'" "$@"
	} >>"$dir/data/postgresql.conf"
}

# Starts the cluster in DIR and waits until it accepts connections.
cluster_start() {
	as_user pg_ctl -D "$1/data" -l "$1/server.log" -w -t 60 start >/dev/null
}

# Stops the cluster in DIR with shutdown mode $2 (fast, immediate), if it
# runs; never fails, as it is meant for cleanup.
cluster_stop() {
	if [ -n "$1" ] && [ -f "$1/data/postmaster.pid" ]; then
		as_user pg_ctl -D "$1/data" -m "$2" -w stop >/dev/null 2>&1 || true
	fi
}

# psql as the cluster user on the cluster in DIR at PORT, without psqlrc.
cluster_psql() {
	local dir=$1 port=$2
	shift 2
	as_user psql -X -h "$dir" -p "$port" "$@"
}

# The benchmarks (test/bench/*.sh) share what follows.  Each sets TREE to its
# staged tree; bench_cluster sets WORK, the cluster's directory, which also
# holds the benchmark's scratch files, and PORT.

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
