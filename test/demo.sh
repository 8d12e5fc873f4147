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
		cluster_stop "$work" fast
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
trap_exit cleanup

ensure_deps
stage=$(stage_tree "$repo")
build_install "$stage"

say "creating a throwaway cluster as user $TM_USER"
work=$(cluster_dir tenant_mgr_demo)
port=$(shuf -i 20000-60000 -n 100 | free_port) || { echo "no free port found" >&2; exit 1; }
# Database tenants need the library preloaded (its launcher and executors are
# background workers) and are managed from the control database, 'demo'.
# The launcher starts before createdb demo below and retries every 5 s, so
# the demo's first queued job may wait that long; tenant_wait() covers it.
cluster_create "$work" "$port" \
	"shared_preload_libraries = 'tenant_mgr'" \
	"tenant_mgr.database = 'demo'"
started=1
cluster_start "$work"
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
cluster_psql "$work" "$port" -e -v ON_ERROR_STOP=1 -P pager=off -d demo \
	-v fixtures="$fixtures" -v migrations="$work/migrations" \
	-f "$stage/test/demo.sql" 2>&1
