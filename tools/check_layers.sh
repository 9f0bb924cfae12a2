#!/usr/bin/env bash
# Checks the direction of dependencies between pg_lambdaguard's modules,
# from the symbols of the built objects (nm):
#
#     common (src/common) <- shared memory (src/shmem)
#       <- { orphan guard (src/orphan), pinning (src/pinning) }
#       <- SQL-callable layer (src/sql) <- root (pg_lambdaguard.c)
#
# An object may use what an object of a lower layer defines, and what
# another object of its own folder defines as long as the calls between the
# files of that folder form no cycle.  The orphan guard and pinning never
# use each other; nothing uses the SQL layer or the root, except the
# settings: the root's variables, declared in include/lg_settings.h.
#
#     bash tools/check_layers.sh [BUILD_DIR]     # default: the checkout
#
# BUILD_DIR holds the objects of a build (make).  Prints every use against
# the direction and exits 1, or prints one line and exits 0.
set -euo pipefail
dir=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$dir"

rank() {
	case $1 in
		src/common/*) echo 0 ;;
		src/shmem/*) echo 1 ;;
		src/orphan/* | src/pinning/*) echo 2 ;;
		src/sql/*) echo 3 ;;
		pg_lambdaguard.o) echo 4 ;;
		*) echo "not in any layer: $1" >&2; exit 2 ;;
	esac
}

objs=$(ls pg_lambdaguard.o src/*/*.o 2>/dev/null) || true
[ -n "$objs" ] || { echo "no objects under $dir: build first (make)" >&2; exit 2; }
[ "$(ls src/*/*.c | wc -l)" -eq "$(ls src/*/*.o | wc -l)" ] ||
	{ echo "some src/*/*.c has no object: build first (make)" >&2; exit 2; }

declare -A owner kind
for o in $objs; do
	while read -r _ t sym; do
		owner[$sym]=$o
		kind[$sym]=$t
	done < <(nm --defined-only -g "$o")
done

bad=0
uses=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for o in $objs; do
	r=$(rank "$o")
	for sym in $(nm -u "$o" | awk '{print $2}'); do
		def=${owner[$sym]:-}
		[ -n "$def" ] || continue
		uses=$((uses + 1))
		d=$(rank "$def")
		why=""
		if [ "$def" = pg_lambdaguard.o ]; then
			# the settings are variables; nothing calls the root
			case ${kind[$sym]} in B | D | C) continue ;; esac
			why="calls the root"
		elif [ "$(dirname "$def")" = "$(dirname "$o")" ]; then
			echo "$def $o" >>"$edges"
			continue
		elif [ "$d" -ge "$r" ]; then
			why="layer $(dirname "$def") is not below $(dirname "$o")"
		fi
		if [ -n "$why" ]; then
			echo "against the direction: $o uses $sym of $def ($why)"
			bad=$((bad + 1))
		fi
	done
done

# within a folder: no cycle between its files
if ! tsort "$edges" >/dev/null 2>"$edges.err"; then
	echo "a cycle between files of one folder:"
	cat "$edges.err"
	bad=$((bad + 1))
fi
rm -f "$edges.err"

if [ "$bad" -gt 0 ]; then
	echo "layers: $bad uses against the direction of dependencies"
	exit 1
fi
echo "layers: $uses uses between modules, all in the direction of dependencies"
