#!/usr/bin/env bash
# One release version everywhere:
#
#     bash tools/check_versions.sh [TREE]
#
# The release (META.json "version", e.g. 1.1.1) must be the version of
# provides.pg_lambdaguard in META.json, the upstream part of the top entry of
# debian/changelog (1.1.1, or 1.1.1-N), and the newest release heading of
# CHANGELOG.md ("## [1.1.1] - date"); pg_lambdaguard.control's
# default_version must be its major.minor (1.1), and that version must be
# installable: pg_lambdaguard--1.1.sql, or a chain of upgrade scripts
# pg_lambdaguard--A--B.sql from an install script to it.  Prints what it
# found; on a disagreement, names the files and their versions and exits 1.
set -uo pipefail
root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$root" || exit 2
errors=()
bad() { errors+=("$*"); }

# META.json: read with Python's json module, not with patterns
meta=$(python3 -c '
import json, sys
m = json.load(open("META.json"))
print(m.get("version", ""), m.get("provides", {}).get("pg_lambdaguard", {}).get("version", ""))
' 2>&1) || { echo "META.json: cannot read it: $meta" >&2; exit 1; }
release=${meta%% *}
provides=${meta#* }
[ -n "$release" ] || bad "META.json: no \"version\""
echo "META.json version: $release"
echo "META.json provides.pg_lambdaguard.version: ${provides:-(none)}"
[ "$provides" = "$release" ] ||
	bad "META.json: provides.pg_lambdaguard.version is '$provides', the release (META.json version) is '$release'"

# debian/changelog: the top entry, "source (version) distribution; ..."
deb=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog 2>/dev/null)
upstream=${deb#*:} # no epoch
case $upstream in *-*) upstream=${upstream%-*} ;; esac # no Debian revision (native: none)
echo "debian/changelog: ${deb:-(none)} (upstream ${upstream:-none})"
[ "$upstream" = "$release" ] ||
	bad "debian/changelog: top entry ${deb:-(none)}, upstream version '${upstream}', META.json says '$release'"

# CHANGELOG.md: the first "## [X.Y.Z]" heading ([Unreleased] is not a release)
top=$(grep -m1 -oE '^## \[[0-9]+\.[0-9]+\.[0-9]+[^]]*\]' CHANGELOG.md 2>/dev/null | sed 's/^## \[\(.*\)\]$/\1/')
echo "CHANGELOG.md newest release: ${top:-(none)}"
[ "$top" = "$release" ] ||
	bad "CHANGELOG.md: newest release heading is '${top:-none}', META.json says '$release'"

# the control file's default_version: the release's major.minor
default=$(sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" pg_lambdaguard.control 2>/dev/null)
echo "pg_lambdaguard.control default_version: ${default:-(none)}"
majmin=$(echo "$release" | cut -d. -f1,2)
[ "$default" = "$majmin" ] ||
	bad "pg_lambdaguard.control: default_version '${default:-none}' is not '$majmin', the major.minor of release $release"

# an install script for default_version, or an upgrade path to it from one
scripts=$(find . -path ./debian -prune -o -path ./node_modules -prune -o -name 'pg_lambdaguard--*.sql' -print 2>/dev/null |
	sed 's|.*/pg_lambdaguard--||; s|\.sql$||' | sort -u)
reach=$(echo "$scripts" | grep -v -- '--' || true)
while :; do
	more=$reach
	for edge in $(echo "$scripts" | grep -- '--' || true); do
		from=${edge%%--*}
		to=${edge#*--}
		if echo "$reach" | grep -qxF -- "$from" && ! echo "$more" | grep -qxF -- "$to"; then
			more=$(printf '%s\n%s' "$more" "$to")
		fi
	done
	[ "$more" = "$reach" ] && break
	reach=$more
done
echo "installable versions: $(echo "$reach" | sort -V | tr '\n' ' ')"
if [ -n "$default" ] && ! echo "$reach" | grep -qxF -- "$default"; then
	bad "pg_lambdaguard.control: default_version $default has no pg_lambdaguard--$default.sql and no upgrade path to it (scripts: $(echo "$scripts" | tr '\n' ' '))"
fi

if [ ${#errors[@]} -gt 0 ]; then
	printf 'version mismatch: %s\n' "${errors[@]}" >&2
	exit 1
fi
echo "versions agree: release $release, extension version $default"
