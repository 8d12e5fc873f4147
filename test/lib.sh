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
