#!/usr/bin/env bash
# The release archive for PGXN: pg_lambdaguard-<version>.zip, a git archive
# of one commit (HEAD unless named) with every file under
# pg_lambdaguard-<version>/, the version read from that commit's META.json.
# Refuses a commit whose versions disagree (tools/check_versions.sh).
#
#     bash tools/dist.sh [COMMIT]     # writes ./pg_lambdaguard-1.2.0.zip
#
# DIST_DIR names the directory the archive goes to (default: the current
# one).  Install it with pgxnclient:
#
#     pgxn install --pg_config /usr/lib/postgresql/15/bin/pg_config ./pg_lambdaguard-1.2.0.zip
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rev=${1:-HEAD}
git -C "$here" rev-parse -q --verify "$rev^{commit}" >/dev/null ||
	{ echo "dist.sh: $rev is not a commit of $here" >&2; exit 1; }
if [ "$rev" = HEAD ] && [ -n "$(git -C "$here" status --porcelain --untracked-files=no)" ]; then
	echo "dist.sh: note: the archive holds HEAD, not the uncommitted changes" >&2
fi

check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
git -C "$here" archive --format=tar "$rev" | tar -C "$check" -xf -
bash "$here/tools/check_versions.sh" "$check" >/dev/null ||
	{ echo "dist.sh: the versions of $rev disagree (bash tools/check_versions.sh)" >&2; exit 1; }
version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$check/META.json")

name=pg_lambdaguard-$version
out=${DIST_DIR:-$PWD}/$name.zip
git -C "$here" archive --format=zip --prefix="$name/" -o "$out" "$rev"
echo "$out"
