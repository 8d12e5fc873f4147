# shellcheck shell=bash
# test/lib.sh: helpers shared by check.sh, demo.sh and the benchmarks
# (whose own helpers are in test/bench/lib.sh).
# Sourced, not run.  Everything here works as root on a fresh Debian
# bookworm machine; clusters run as an unprivileged user because initdb
# refuses root.

PG_MAJOR=${PG_MAJOR:-15}
# the LLVM that Debian's PostgreSQL $PG_MAJOR is built with, until PGXS says
PG_LLVM=${PG_LLVM:-14}
# PG_BINDIR may name the bin directory of a relocated copy of the server
# (its pg_config then names the copy's directories, where make install goes)
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/$PG_MAJOR/bin}
PG_CONFIG=$PG_BINDIR/pg_config
export PATH="$PG_BINDIR:$PATH"
TM_USER=${TM_USER:-postgres}

say() { printf '\n==> %s\n' "$*"; }

# The value of variable $1 in PGXS's Makefile.global, or $2 if there is no
# such file yet.
pgxs_var() {
	local mk
	mk=$("$PG_CONFIG" --pgxs 2>/dev/null) && mk=$(dirname "$mk")/../Makefile.global
	if [ -n "$mk" ] && [ -f "$mk" ]; then
		sed -nE "s/^$1[[:space:]]*=[[:space:]]*//p" "$mk" | tail -n 1
	else
		echo "$2"
	fi
}

# Prints the Debian packages providing what building and testing need and
# this machine lacks, one per line: each check tests the thing the build or
# the tests use, not a file that happens to ship next to it.  Without
# pg_config, PGXS's settings are unknown and Debian's are assumed.
missing_deps() {
	local server_inc=/usr/include/postgresql/$PG_MAJOR/server
	local tap_perl=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/test/perl
	local pgxs=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs/src/makefiles/pgxs.mk
	local cc clang llvm_bin
	[ -x "$PG_BINDIR/postgres" ] || echo "postgresql-$PG_MAJOR"
	if [ -x "$PG_CONFIG" ]; then
		server_inc=$("$PG_CONFIG" --includedir-server)
		tap_perl=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/perl
		pgxs=$("$PG_CONFIG" --pgxs)
	else
		echo "postgresql-client-$PG_MAJOR"
	fi
	# the server headers (not in the package that ships pgxs.mk)
	[ -f "$server_inc/postgres.h" ] || echo "postgresql-server-dev-$PG_MAJOR"
	# pgxs.mk and Makefile.global (Debian ships them in the client package,
	# which the server-dev package depends on)
	[ -f "$pgxs" ] || echo "postgresql-server-dev-$PG_MAJOR"
	# the TAP tests' PostgreSQL::Test::Cluster and what it runs on
	[ -f "$tap_perl/PostgreSQL/Test/Cluster.pm" ] || echo "postgresql-client-$PG_MAJOR"
	perl -MIPC::Run -e 1 2>/dev/null || echo libipc-run-perl
	# PgBouncer for TAP 006, which runs its own as the cluster user with its
	# own ini file and a free port: a system service that the package's
	# postinst may start (port 6432, /etc/pgbouncer) is neither used nor
	# stopped
	[ -x /usr/sbin/pgbouncer ] || echo pgbouncer
	command -v prove >/dev/null || echo perl
	# the C compiler PGXS calls, with the C library's headers
	cc=$(pgxs_var CC gcc)
	command -v make >/dev/null || echo make
	printf '#include <stdio.h>\n' | "${cc%% *}" -E -x c - >/dev/null 2>&1 || echo build-essential
	# PGXS also compiles LLVM bitcode for JIT with clang and indexes it
	# with llvm-lto at install (Debian: clang-14, /usr/lib/llvm-14/bin)
	if [ "$(pgxs_var with_llvm yes)" = yes ]; then
		clang=$(pgxs_var CLANG "/usr/bin/clang-$PG_LLVM")
		llvm_bin=$(pgxs_var LLVM_BINPATH "/usr/lib/llvm-$PG_LLVM/bin")
		[ -x "$clang" ] || command -v "$clang" >/dev/null ||
			basename "$clang" | sed -E 's/^(clang(-[0-9]+)?).*/\1/'
		[ -x "$llvm_bin/llvm-lto" ] ||
			echo "$llvm_bin" | sed -nE 's|.*/(llvm-[0-9]+)/bin/?$|\1|p'
	fi
	command -v runuser >/dev/null || echo util-linux
	# the static analysis stage of check.sh
	command -v cppcheck >/dev/null || echo cppcheck
	return 0
}

# Installs what building and testing need, only when something is missing:
# the PostgreSQL packages first, then whatever their PGXS settings name
# that is still missing (the compiler and LLVM it was built with).
ensure_deps() {
	local missing updated=
	for _ in 1 2; do
		mapfile -t missing < <(missing_deps | sort -u)
		[ ${#missing[@]} -gt 0 ] || break
		if [ "$(id -u)" -ne 0 ]; then
			echo "missing packages: ${missing[*]}; run this script as root to install them" >&2
			exit 1
		fi
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		if [ -z "$updated" ]; then
			apt-get update -q >/dev/null
			updated=1
		fi
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
	done
	mapfile -t missing < <(missing_deps | sort -u)
	if [ ${#missing[@]} -gt 0 ]; then
		echo "still missing after installing: ${missing[*]}" >&2
		exit 1
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

# Static analysis of src/*.c in DIR with cppcheck; prints what it finds
# and fails if it finds anything.  It reads the server headers, so that
# PostgreSQL's macros (foreach, PG_TRY, ereport) parse and its noreturn
# functions are known, but reports nothing in them; one configuration
# (GCC on x86-64 Linux) is checked, as the server was built for it.
# Findings that are false positives are suppressed where they occur, with
# "cppcheck-suppress" and a comment saying why.
static_check() {
	local dir=$1 inc
	inc=$("$PG_CONFIG" --includedir-server)
	say "cppcheck on src/"
	(cd "$dir" && cppcheck -q -j2 --error-exitcode=1 --inline-suppr \
		--enable=warning,style,performance,portability \
		--std=c99 --platform=unix64 -D__GNUC__ -D__x86_64__ -D__linux__ \
		-I src -I "$inc" --config-exclude="$inc" --suppress="*:$inc/*" \
		--suppress=missingIncludeSystem src/*.c)
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
