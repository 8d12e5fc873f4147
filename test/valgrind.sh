#!/usr/bin/env bash
# test/valgrind.sh: the pg_regress suite with every server process under
# Valgrind's memcheck, and a verdict on the errors it finds in tenant_mgr.
#
#     test/valgrind.sh                      # every pg_regress file
#     test/valgrind.sh setup names drop     # some (in the Makefile's order)
#
# Builds tenant_mgr with -DUSE_VALGRIND -Og -g and installs it into the
# system PostgreSQL, like check.sh: hold the same lock (flock
# /tmp/tm-test.lock) where others test on the machine.  Then starts a
# throwaway cluster whose postmaster runs under valgrind
# --trace-children=yes (pg_ctl -p names a wrapper that execs valgrind on
# the real binary; backends, the launcher, job workers and executors are
# forked from it and stay under valgrind), runs the pg_regress files
# against it as installcheck does, stops it, and sorts the errors of every
# process's log into those whose stack passes through tenant_mgr.so and the
# others.  Exits non-zero if tenant_mgr has any, or the suite failed.
#
# Limits: Debian's server binary is not built with USE_VALGRIND, so palloc
# memory is not instrumented: memcheck sees reads of undefined bytes and
# invalid accesses of malloc'd memory (memory context blocks, DSM, libc),
# not a palloc chunk used after pfree.  Leaks are not checked (memory
# contexts free in bulk).  A regress file whose expected output depends on
# timing may differ under valgrind's slowness: the diffs are kept and
# printed, and fail the run like anywhere else.
#
# The suppressions in test/valgrind.supp cover the server's own known
# reports; VALGRIND_SUPP may name more files (space-separated), such as
# PostgreSQL's src/tools/valgrind.supp of the server's branch.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/test/lib.sh"

ensure_deps
if ! command -v valgrind >/dev/null || [ ! -f /usr/include/valgrind/memcheck.h ]; then
	[ "$(id -u)" -eq 0 ] || { echo "valgrind is missing; run this script as root to install it" >&2; exit 1; }
	say "installing valgrind"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends valgrind >/dev/null
fi

# the pg_regress files: those named, else the Makefile's list
all=$(sed -n 's/^REGRESS = //p' "$root/Makefile")
if [ $# -gt 0 ]; then
	tests=()
	for t in $all; do
		for a in "$@"; do
			[ "$a" = "$t" ] && tests+=("$t")
		done
	done
	[ ${#tests[@]} -eq $# ] || { echo "test/valgrind.sh: unknown regress file among: $* (one of: $all)" >&2; exit 2; }
else
	read -ra tests <<<"$all"
fi

stage=$(stage_tree "$root")
dir=
cleanup() {
	cluster_stop "$dir" immediate
	if [ "${keep:-0}" = 1 ]; then
		echo "kept for inspection: $stage and $dir"
	else
		rm -rf "$stage"
		[ -n "$dir" ] && rm -rf "$dir"
	fi
}
trap_exit cleanup

say "building tenant_mgr for valgrind"
as_user make -C "$stage" -s COPT="-Werror -DUSE_VALGRIND -Og -g" >/dev/null
say "installing into $("$PG_CONFIG" --pkglibdir)"
make -C "$stage" -s install >/dev/null

dir=$(cluster_dir tm_valgrind)
port=$(seq 56100 56199 | free_port)
supp="--suppressions=$stage/test/valgrind.supp"
for f in ${VALGRIND_SUPP:-}; do
	supp+=" --suppressions=$(realpath "$f")"
done

# the wrapper pg_ctl starts instead of the postmaster; one log per process
as_user tee "$dir/postgres" >/dev/null <<EOF
#!/bin/sh
exec valgrind --quiet --trace-children=yes --track-origins=yes \\
	--read-var-info=no --num-callers=40 --fullpath-after= --error-limit=no --leak-check=no \\
	--error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \\
	$supp --log-file=$dir/valgrind.%p.log \\
	"$PG_BINDIR/postgres" "\$@"
EOF
chmod 755 "$dir/postgres"
# settings of the pg_regress temp instance (test/regress.conf), and time
# for the slower processes
cluster_create "$dir" "$port" "include '$stage/test/regress.conf'" \
	"max_worker_processes = 16" "tenant_mgr.job_timeout = 1800"

say "starting the cluster under valgrind"
start=$(date +%s)
as_user pg_ctl -D "$dir/data" -l "$dir/server.log" -p "$dir/postgres" -w -t 600 start >/dev/null

say "running pg_regress ${tests[*]}"
set +e
(cd "$stage" && as_user "$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
	--inputdir=test --bindir="$PG_BINDIR" --host="$dir" --port="$port" \
	--dbname=contrib_regression "${tests[@]}")
rc=$?
set -e
as_user pg_ctl -D "$dir/data" -m fast -w -t 600 stop >/dev/null || rc=1
elapsed=$(($(date +%s) - start))

# every error of every process, one per record, from its BEGIN to END marker
errors=$dir/errors.txt
ours=$dir/tenant_mgr_errors.txt
: >"$errors"
for f in "$dir"/valgrind.*.log; do
	awk '/VALGRINDERROR-BEGIN/ {on = 1; next} /VALGRINDERROR-END/ {on = 0; print "--"; next} on' "$f" >>"$errors"
done
# Ours: tenant_mgr's code (by its source files, built with -g, or its
# library) among the innermost frames of the error (past libc and
# valgrind's own), or of the allocation its bytes came from (past the
# allocators).  Deeper down, most stacks pass through tenant_mgr anyway:
# its SQL runs the whole server below it.
export TM_STAGE=$stage
classify='
	my $ours = qr/tenant_mgr\.so|\Q$ENV{TM_STAGE}\E\/src\//;
	sub near {
		my ($frames, $skip, $n) = @_;
		my @f = grep { !/$skip/ } @$frames;
		return scalar grep { /$ours/ } @f[0 .. ($n < @f ? $n - 1 : $#f)];
	}
	sub ours {
		my ($rec) = @_;
		my ($err, $origin) = split /^==\d+== +(?:Uninitialised value was created|Address 0x)/m, $rec, 2;
		my @e = $err =~ /(?:at|by) 0x[0-9A-F]+: (.*)$/mg;
		my @o = defined $origin ? $origin =~ /(?:at|by) 0x[0-9A-F]+: (.*)$/mg : ();
		return near(\@e, qr/vgpreload|libc\.so|\(libio\/|\(string\/|sysdeps/, 4)
		  || near(\@o, qr/vgpreload|libc\.so|^\?\?\?|alloc|MemoryContext|AllocSet/, 4);
	}'
perl -0777 -ne "$classify"' for (split /^--\n/m) { print "$_--\n" if ours($_) }' "$errors" >"$ours"
n_all=$(grep -c '^--$' "$errors" || true)
n_ours=$(grep -c '^--$' "$ours" || true)
n_procs=$(find "$dir" -name 'valgrind.*.log' | wc -l)

if [ "$n_ours" -gt 0 ]; then
	say "errors in tenant_mgr"
	cat "$ours"
fi
if [ "$n_all" -gt "$n_ours" ]; then
	say "other errors (the server's; first lines of each kind)"
	perl -0777 -ne "$classify"' for (split /^--\n/m) { next if ours($_); my @l = split /\n/;
		s/^==\d+== +// for @l; print "$l[0] / $l[1]\n" }' "$errors" |
		sort | uniq -c | sort -rn | head -n 20
fi
[ "$n_all" -eq 0 ] || keep=1
[ "$rc" -eq 0 ] || { keep=1; [ -s "$stage/regression.diffs" ] && cat "$stage/regression.diffs"; }
echo
echo "valgrind: ${#tests[@]} regress files, pg_regress exit $rc, $n_procs processes, $n_all errors, $n_ours in tenant_mgr, ${elapsed}s"
[ "$rc" -eq 0 ] && [ "$n_ours" -eq 0 ]
