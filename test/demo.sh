#!/usr/bin/env bash
# test/demo.sh: the whole tour of tenant_mgr in one command.
#
# On a fresh Debian machine, as root:
#
#     test/demo.sh
#
# installs what is missing, builds and installs tenant_mgr from a staged copy
# of this tree, starts a throwaway cluster as the unprivileged user $TM_USER
# (initdb refuses root), and runs test/demo.sql through psql so that every
# statement is printed with its result.  On exit the cluster is stopped and
# everything the script created is removed.  Exit status 0 means every step
# worked; any failing statement or expectation stops the demo with non-zero.

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=test/lib.sh
. "$repo/test/lib.sh"

stage=
work=
started=

cleanup() {
	local rc=$?
	set +e
	if [ -n "$started" ]; then
		if [ $rc -ne 0 ] && [ -f "$work/server.log" ]; then
			say "last lines of the server log"
			tail -n 20 "$work/server.log"
		fi
		say "stopping the demo cluster"
		as_user pg_ctl -D "$work/data" -m fast -w stop >/dev/null
	fi
	[ -n "$work" ] && rm -rf "$work"
	[ -n "$stage" ] && rm -rf "$stage"
	if [ $rc -eq 0 ]; then
		say "demo finished: every step succeeded"
	else
		say "demo FAILED (exit status $rc)" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Prints a TCP port nobody listens on.  The cluster listens only on a unix
# socket in its own directory, but a free port keeps that socket's name and
# the server's shared memory key clear of any other cluster on the machine.
free_port() {
	local port
	for port in $(shuf -i 20000-60000 -n 100); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	echo "no free port found" >&2
	return 1
}

ensure_deps
stage=$(stage_tree "$repo")
build_install "$stage"

say "creating a throwaway cluster as user $TM_USER"
work=$(as_user mktemp -d /tmp/tenant_mgr_demo.XXXXXX)
port=$(free_port)
as_user initdb -D "$work/data" -A trust -E UTF8 --locale=C >/dev/null
# Database tenants need the library preloaded (its launcher and executors are
# background workers) and are managed from the control database, 'demo'.
# The launcher starts before createdb demo below and retries every 5 s, so
# the demo's first queued job may wait that long; tenant_wait() covers it.
cat >>"$work/data/postgresql.conf" <<EOF

# tenant_mgr demo
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'demo'
EOF
started=1
as_user pg_ctl -D "$work/data" -l "$work/server.log" -w -t 60 start >/dev/null
echo "cluster in $work, socket $work/.s.PGSQL.$port"

as_user createdb -h "$work" -p "$port" demo

# migrations_load() reads a server directory: give it one holding only
# 001..010, readable by the server; 011 arrives later in the demo.
fixtures=$stage/test/fixtures
as_user mkdir "$work/migrations"
for f in "$fixtures"/[0-9]*_*.sql; do
	v=$(basename "$f")
	v=${v%%_*}
	if [ $((10#$v)) -le 10 ]; then
		as_user cp "$f" "$work/migrations/"
	fi
done

say "running test/demo.sql (each statement is printed before its result)"
# stdout and stderr into one stream, so errors appear where they happen
as_user psql -X -e -v ON_ERROR_STOP=1 -P pager=off \
	-h "$work" -p "$port" -d demo \
	-v fixtures="$fixtures" -v migrations="$work/migrations" \
	-f "$stage/test/demo.sql" 2>&1
