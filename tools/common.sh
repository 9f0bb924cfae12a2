# Shared set-up for pg_lambdaguard's commands (sourced, not run).
# Works from a fresh Debian 12 machine, as root or as a user with sudo.

# The PostgreSQL to use: the first pg_config named in PG_CONFIG (a
# space-separated list; tools/test.sh walks all of them), else Debian's 15.
LG_DEBIAN_MAJOR=15
LG_PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$LG_DEBIAN_MAJOR/bin/pg_config}
LG_PG_CONFIG=${LG_PG_CONFIG%% *}
LG_PG_BIN=$(dirname "$LG_PG_CONFIG")
LG_PG_MAJOR=$(basename "$(dirname "$LG_PG_BIN")")
# (plpgsql-check, pldebugger and pgaudit: the neighbours t/304 loads with it)
LG_PACKAGES="postgresql-$LG_DEBIAN_MAJOR postgresql-server-dev-$LG_DEBIAN_MAJOR postgresql-contrib \
postgresql-$LG_DEBIAN_MAJOR-plpgsql-check postgresql-$LG_DEBIAN_MAJOR-pldebugger \
postgresql-$LG_DEBIAN_MAJOR-pgaudit libipc-run-perl pgbouncer make gcc util-linux valgrind"

lg_say() { printf '\n==> %s\n' "$*"; }

# Run a command as root: directly when we are root, else through sudo.
lg_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install exactly these Debian packages where missing; apt-get update first.
lg_install_debian() {
	local missing="" p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		lg_say "installing Debian packages:$missing"
		lg_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -qq
		lg_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
			-o Dpkg::Options::=--force-confdef $missing >/dev/null
	fi
}

# Install what building and testing the extension needs, plus "$@".
lg_install_packages() {
	lg_install_debian $LG_PACKAGES "$@"
	command -v node >/dev/null || { echo "Node.js 20 is needed (node not found)" >&2; return 1; }
}

# Build and install the extension into the PostgreSQL $LG_PG_MAJOR tree.
# LG_WERROR=1 makes a compiler warning an error (the test command sets it).
lg_build_install() {
	local src=$1 copt=""
	lg_say "building and installing pg_lambdaguard"
	if [ "${LG_WERROR:-0}" = 1 ]; then copt="-Werror"; fi
	make -C "$src" -s PG_CONFIG="$LG_PG_CONFIG" COPT="$copt"
	lg_root make -C "$src" -s PG_CONFIG="$LG_PG_CONFIG" COPT="$copt" install
}

# The user that runs servers: postgres when we are root, else ourselves.
lg_server_user() {
	if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# Run a command as the server user.
lg_as_server_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- env PATH="$LG_PG_BIN:$PATH" "$@"
	else
		env PATH="$LG_PG_BIN:$PATH" "$@"
	fi
}

# A scratch copy of the source tree that the server user owns, so that test
# output never lands in the checkout.
lg_scratch_copy() {
	local src=$1 dst
	dst=$(mktemp -d /tmp/pg_lambdaguard.XXXXXX)
	(cd "$src" && git ls-files -z --cached --others --exclude-standard 2>/dev/null |
		xargs -0 -I{} cp --parents {} "$dst" 2>/dev/null) || cp -a "$src/." "$dst"
	[ -f "$dst/Makefile" ] || cp -a "$src/." "$dst"
	if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$dst"; fi
	chmod 755 "$dst"
	echo "$dst"
}
