#!/usr/bin/env bash
# test/check.sh: the one test command.
#
#     test/check.sh                             # everything (what CI runs)
#     test/check.sh regress                     # one whole suite
#     test/check.sh regress triggers security   # some pg_regress files
#     test/check.sh isolation customers         # one isolation spec
#     test/check.sh tap 002                     # test/t/002*.pl
#     test/check.sh regress names tap 003       # several suites at once
#
# Suites are regress (test/sql/NAME.sql), isolation (test/specs/NAME.spec)
# and tap (test/t/PREFIX*.pl); the names after a suite restrict it, and a
# suite not named is skipped.  pg_regress files run in the Makefile's order,
# and one that does not create the extension itself runs after the files
# before it, back to the one that does (names runs after setup).  An unknown
# suite or name is an error (exit status 2).
#
# On a fresh Debian bookworm machine, as root: installs what is missing,
# builds with warnings as errors, installs, runs cppcheck on src/ (any
# finding fails), and runs the chosen suites
# against throwaway clusters started as an unprivileged user (initdb refuses
# root).  Ends with "tests: N passed, N failed"; prints the diffs and logs of
# anything that fails and exits non-zero.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/test/lib.sh"

usage() {
	echo "usage: test/check.sh [SUITE [NAME...]]..."
	sed -n '4,16s/^# \{0,1\}//p' "$root/test/check.sh"
}

# Fails with status 2 and the usage.
bad_usage() {
	echo "test/check.sh: $*" >&2
	usage >&2
	exit 2
}

# The Makefile's list $1 (REGRESS or ISOLATION), in its order.
make_list() {
	sed -n "s/^$1 = //p" "$root/Makefile"
}

# --- which tests: suite words, each followed by the names that restrict it

declare -A given=() names_of=()
suite=
for arg in "$@"; do
	case $arg in
	-h | --help)
		usage
		exit 0
		;;
	regress | isolation | tap)
		suite=$arg
		given[$suite]=1
		;;
	*)
		[ -n "$suite" ] || bad_usage "unknown suite \"$arg\" (regress, isolation or tap)"
		names_of[$suite]+=" $arg"
		;;
	esac
done

# pg_regress: requested files plus the ones each depends on, in order
select_regress() {
	local -a list want=()
	local -A keep=()
	local n i j
	read -ra list <<<"$(make_list REGRESS)"
	for n in $1; do
		n=${n##*/}
		n=${n%.sql}
		for ((i = 0; i < ${#list[@]}; i++)); do
			[ "${list[i]}" = "$n" ] && break
		done
		[ "$i" -lt "${#list[@]}" ] ||
			bad_usage "unknown regress test \"$n\" (one of: ${list[*]})"
		for ((j = i; j > 0; j--)); do
			grep -q '^CREATE EXTENSION tenant_mgr' "$root/test/sql/${list[j]}.sql" && break
		done
		for ((; j <= i; j++)); do
			keep[${list[j]}]=1
		done
	done
	for n in "${list[@]}"; do
		[ -n "${keep[$n]:-}" ] && want+=("$n")
	done
	echo "${want[*]}"
}

select_isolation() {
	local -a list want=()
	local n
	read -ra list <<<"$(make_list ISOLATION)"
	for n in $1; do
		n=${n##*/}
		n=${n%.spec}
		[[ " ${list[*]} " == *" $n "* ]] ||
			bad_usage "unknown isolation spec \"$n\" (one of: ${list[*]})"
		[[ " ${want[*]} " == *" $n "* ]] || want+=("$n")
	done
	echo "${want[*]}"
}

select_tap() {
	local -a want=() files
	local n f
	for n in $1; do
		n=${n##*/}
		n=${n%.pl}
		mapfile -t files < <(cd "$root" && compgen -G "test/t/${n}*.pl")
		if [ ${#files[@]} -eq 0 ]; then
			bad_usage "no TAP test test/t/${n}*.pl (there are: $(cd "$root" && echo test/t/*.pl))"
		fi
		for f in "${files[@]}"; do
			[[ " ${want[*]} " == *" $f "* ]] || want+=("$f")
		done
	done
	echo "${want[*]}"
}

# make variables: a suite left out gets an empty list, which PGXS skips;
# one given without names keeps the Makefile's list
make_vars=()
chosen="pg_regress, isolation and TAP suites"
if [ ${#given[@]} -gt 0 ]; then
	chosen=
	if [ -z "${given[regress]:-}" ]; then
		make_vars+=("REGRESS=")
	elif [ -n "${names_of[regress]:-}" ]; then
		sel=$(select_regress "${names_of[regress]}")
		make_vars+=("REGRESS=$sel")
		chosen+="pg_regress $sel, "
	else
		chosen+="pg_regress, "
	fi
	if [ -z "${given[isolation]:-}" ]; then
		make_vars+=("ISOLATION=")
	elif [ -n "${names_of[isolation]:-}" ]; then
		sel=$(select_isolation "${names_of[isolation]}")
		make_vars+=("ISOLATION=$sel")
		chosen+="isolation $sel, "
	else
		chosen+="isolation, "
	fi
	if [ -z "${given[tap]:-}" ]; then
		make_vars+=("TAP_TESTS=")
	elif [ -n "${names_of[tap]:-}" ]; then
		sel=$(select_tap "${names_of[tap]}")
		make_vars+=("PROVE_TESTS=$sel")
		chosen+="TAP $sel, "
	else
		chosen+="TAP, "
	fi
	chosen=${chosen%, }
fi

ensure_deps
# Citus for the scale-out test (016_citus.pl skips without it); CI has
# ../shared beside the repository
if [ -f "$root/../shared/vendor/build-citus.sh" ]; then
	say "Citus for the scale-out test"
	bash "$root/../shared/vendor/build-citus.sh"
fi
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
static_check "$stage"

say "running $chosen"
set +e
as_user make -C "$stage" -s installcheck PROVE_FLAGS="--timer" "${make_vars[@]}" 2>&1 | tee "$log"
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
