# shellcheck shell=bash
# test/lib.sh: helpers shared by check.sh, demo.sh and the benchmarks
# (whose own helpers are in test/bench/lib.sh).
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
