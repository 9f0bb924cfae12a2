# Shared by the packaging suite's scripts (sourced, not run): TAP-style
# results and throwaway clusters on free loopback ports.

pass=0
fail=0

ok() {
	pass=$((pass + 1))
	echo "ok $((pass + fail)) - $1"
}
not_ok() {
	fail=$((fail + 1))
	echo "not ok $((pass + fail)) - $1"
	if [ -n "${2:-}" ]; then printf '%s\n' "$2" | head -40 | sed 's/^/#   /'; fi
}
# is NAME GOT EXPECTED
is() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got: [$2] expected: [$3]"; fi
}
# like NAME GOT REGEX
like() {
	if printf '%s' "$2" | tr '\n' ' ' | grep -Eq -- "$3"; then ok "$1"; else
		not_ok "$1" "got: [$2] expected to match: [$3]"
	fi
}
# check NAME COMMAND...: the command succeeds (its output shown if not)
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}

# free_port FROM TO: a loopback TCP port nobody listens on
free_port() {
	local p
	for p in $(seq "$1" "$2"); do
		if ! (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# cluster_start DIR PORT [postgresql.conf lines...]: initdb DIR/data and
# start it (as the calling user, with the PostgreSQL in PATH), its socket in
# DIR, its log in DIR/server.log
cluster_start() {
	local dir=$1 port=$2
	shift 2
	mkdir -p "$dir"
	initdb -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log"; return 1; }
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "fsync = off"
		printf '%s\n' "$@"
	} >>"$dir/data/postgresql.conf"
	pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
}

cluster_stop() {
	[ -f "$1/data/postmaster.pid" ] || return 0
	pg_ctl -D "$1/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
		pg_ctl -D "$1/data" -m immediate -w -t 30 stop >/dev/null 2>&1
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll until the command prints t
wait_for() {
	local what=$1 n=$(($2 * 10)) i
	shift 2
	for ((i = 0; i < n; i++)); do
		[ "$("$@" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	echo "# timed out waiting for $what"
	return 1
}

# summary NAME: the closing line, and the exit status
summary() {
	echo "$1: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}
