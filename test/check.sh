#!/usr/bin/env bash
# test/check.sh: the one test command.
#
# On a fresh Debian bookworm machine, as root: installs what is missing,
# builds with warnings as errors, installs, and runs the pg_regress,
# isolation and TAP suites against throwaway clusters started as an
# unprivileged user (initdb refuses root).  Prints the diffs and logs of
# anything that fails and exits non-zero.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/test/lib.sh"

ensure_deps
stage=$(stage_tree "$root")
log=$stage/check.log
cleanup() {
	if [ "${keep_stage:-0}" = 1 ]; then
		echo "test tree kept for inspection: $stage"
	else
		rm -rf "$stage"
	fi
}
trap cleanup EXIT

build_install "$stage"

say "running pg_regress, isolation and TAP suites"
set +e
as_user make -C "$stage" -s installcheck PROVE_FLAGS="--timer" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

# One summary line over all suites: pg_regress and isolation tests, and TAP
# assertions.
passed=$(grep -cE '^(ok [0-9]+ +[-+] |test .* \.\.\. ok|     [a-z_0-9]+ +\.\.\. ok)' "$log" || true)
regress_failed=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ +[-+] ' "$log" || true)
tap_tests=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$log" | tail -n 1)
tap_failed=$(sed -nE 's/^Failed ([0-9]+)\/[0-9]+ subtests.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')

if [ "$rc" -ne 0 ]; then
	keep_stage=1
	for f in "$stage"/regression.diffs "$stage"/output_iso/regression.diffs; do
		[ -s "$f" ] && { say "diffs: $f"; cat "$f"; }
	done
	for f in "$stage"/tmp_check/log/regress_log_*; do
		[ -f "$f" ] && { say "TAP log: $f (last 60 lines)"; tail -n 60 "$f"; }
	done
	[ "$regress_failed" -gt 0 ] || [ "$tap_failed" -gt 0 ] || regress_failed=1
fi

total_passed=$((passed + ${tap_tests:-0} - tap_failed))
total_failed=$((regress_failed + tap_failed))
echo
echo "tests: $total_passed passed, $total_failed failed"
exit "$rc"
