#!/usr/bin/env bash
# The packaging suite (suite name "packaging"): pg_lambdaguard installed the
# ways DBAs install extensions.  From a fresh Debian 12 machine, as root or as
# a user with sudo (tools/test.sh runs it once, after the per-version suites):
#
#     bash test/packaging/run.sh
#
#  1. versions: tools/check_versions.sh passes, and fails, naming the file,
#     on a copy where one version disagrees;
#  2. META.json is valid against the PGXN Meta Spec 1.0.0
#     (test/pgxn/check_meta.py), and broken copies of it are refused;
#  3. Debian packages, for the PostgreSQL versions Debian packages
#     (pg_buildext supported-versions): built from a clean copy of the tree
#     and installed with the install guide's commands (the fenced block after
#     <!-- install:deb --> in README.md); lintian --fail-on error; their
#     contents; the autopkgtest (debian/tests/installcheck) runs pg_regress,
#     isolation and the worker's (but the soak) and upgrade TAP tests
#     against the installed files (PACKAGING_TAP_TESTS names others; "t/*.pl"
#     for all); a pg_dump / pg_restore round trip of the C edition; purged:
#     nothing left;
#  4. PGXN: the release archive made and installed with pgxnclient (block
#     install:pgxn), the extension works, pgxn uninstall leaves nothing;
#  5. from source: block install:source, the extension works, make
#     uninstall leaves nothing;
#  6. the managed edition's pg_dump / pg_restore round trips: installed with
#     psql -f, its pg_tle content as an extension, and, where pg_tle is
#     installed (Debian does not package it), the pg_tle package itself.
# Steps 3 to 5 install and remove the extension in the PostgreSQL
# directories: files of an earlier install (not from a package) are moved
# aside first and put back at the end, and with LG_INSTALL_LOCK set the
# steps hold flock on that file.  Nothing is written into the tree.
# Prints "packaging: N passed, N failed"; exits non-zero on a failure.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Debian's PostgreSQL, whatever PG_CONFIG the caller tested last
unset PG_CONFIG
. "$here/tools/common.sh"
. "$here/test/packaging/lib.sh"
started=$(date +%s)

lg_install_debian build-essential debhelper devscripts fakeroot lintian postgresql-server-dev-all \
	pgxnclient python3-jsonschema unzip git libipc-run-perl make postgresql-contrib

# the install guide: README.md when it holds the blocks, else docs/install.md
guide=$here/README.md
grep -q '^<!-- install:deb -->' "$guide" 2>/dev/null || guide=$here/docs/install.md
# block NAME: the fenced block after <!-- install:NAME --> in the guide
block() {
	awk -v m="<!-- install:$1 -->" '
		$0 == m { found = 1; next }
		found == 1 && /^```/ { found = 2; next }
		found == 2 && /^```/ { exit }
		found == 2 { print }' "$guide"
}
# run_block NAME DIR: run it with bash -e in DIR, as a DBA would paste it
# (sudo is the identity as root; apt answers yes)
run_block() {
	local prelude
	prelude='sudo() { if [ "$(id -u)" -eq 0 ]; then "$@"; else command sudo env APT_CONFIG="$APT_CONFIG" DEBIAN_FRONTEND=noninteractive "$@"; fi; }'
	(cd "$2" && APT_CONFIG=$apt_config DEBIAN_FRONTEND=noninteractive bash -e -o pipefail -c "$prelude
$(block "$1")")
}
# sub NAME COMMAND...: a helper script's results, counted here
sub() {
	local name=$1 out p f
	shift
	out=$("$@" 2>&1)
	printf '%s\n' "$out" | sed 's/^/    /'
	p=$(printf '%s\n' "$out" | sed -n "s/^$name: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p" | tail -1)
	f=$(printf '%s\n' "$out" | sed -n "s/^$name: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p" | tail -1)
	if [ -z "$p" ]; then not_ok "$name ran to its end"; return; fi
	pass=$((pass + p))
	fail=$((fail + f))
}
as_server() { lg_as_server_user env LG_PG_BIN="$LG_PG_BIN" SRC="$here" WORK="$work" "$@"; }

work=$(mktemp -d /tmp/lg-packaging.XXXXXX)
chmod 755 "$work"
apt_config=$work/apt.conf
printf 'APT::Get::Assume-Yes "true";\nDPkg::Lock::Timeout "900";\n' >"$apt_config"
saved=""
locked=""
managed_ext=pg_lambdaguard_managed_dump
sharedir15=$("$LG_PG_CONFIG" --sharedir)
cleanup() {
	set +e
	[ -n "$locked" ] && put_back
	rm -f "$sharedir15/extension/$managed_ext.control" "$sharedir15/extension/$managed_ext--1.1.sql"
	rm -rf "$work"
}
trap cleanup EXIT

# --- 1. one version everywhere ---------------------------------------------------
lg_say "packaging: versions"
out=$(bash "$here/tools/check_versions.sh" "$here" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/    /'
is "tools/check_versions.sh: META.json, debian/changelog, CHANGELOG.md and the control file agree" "$rc" 0
release=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$here/META.json")
extversion=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$here/pg_lambdaguard.control")
# mismatch FILE EDIT EXPECTED: a copy with one file edited must fail, naming it
mismatch() {
	local d=$work/versions out rc=0
	rm -rf "$d"
	mkdir -p "$d"
	cp -r "$here/META.json" "$here/CHANGELOG.md" "$here/pg_lambdaguard.control" "$here/debian" "$d/"
	cp "$here"/pg_lambdaguard--*.sql "$d/"
	(cd "$d" && eval "$2")
	out=$(bash "$here/tools/check_versions.sh" "$d" 2>&1) || rc=$?
	like "tools/check_versions.sh fails when $1" "$rc $out" "^1 .*$3"
}
mismatch "META.json says 9.9.9" "sed -i 's/\"version\": \"$release\",/\"version\": \"9.9.9\",/' META.json" \
	"debian/changelog: top entry $release, upstream version '$release', META.json says '9.9.9'"
mismatch "provides.version is the SQL version" \
	"sed -i '/\"provides\"/,/}/s/\"version\": \"$release\"/\"version\": \"$extversion\"/' META.json" \
	"META.json: provides.pg_lambdaguard.version is '$extversion'"
mismatch "debian/changelog's top entry is another version" "sed -i '1s/($release)/(9.9.9)/' debian/changelog" \
	"debian/changelog: top entry 9.9.9"
mismatch "CHANGELOG.md's newest release is another one" \
	"sed -i '0,/^## \[$release\]/s//## [9.9.9]/' CHANGELOG.md" "CHANGELOG.md: newest release heading is '9.9.9'"
mismatch "default_version is not the release's major.minor" \
	"sed -i \"s/^default_version = .*/default_version = '9.9'/\" pg_lambdaguard.control" \
	"pg_lambdaguard.control: default_version '9.9' is not '${release%.*}'.*no pg_lambdaguard--9.9.sql and no upgrade path"
mismatch "no script installs default_version" "rm -f pg_lambdaguard--*--$extversion.sql pg_lambdaguard--$extversion.sql" \
	"default_version $extversion has no pg_lambdaguard--$extversion.sql and no upgrade path to it"

# --- 2. META.json ------------------------------------------------------------------
lg_say "packaging: META.json against the PGXN Meta Spec 1.0.0"
out=$(/usr/bin/python3 "$here/test/pgxn/check_meta.py" "$here/META.json" 2>&1)
is "META.json is valid (test/pgxn/meta-schema.json, with Debian's python3-jsonschema)" "$?|$out" \
	"0|$here/META.json: valid (PGXN Meta Spec 1.0.0)"
out=$(/usr/bin/python3 "$here/test/pgxn/check_meta.py" --broken "$here/META.json" 2>&1)
printf '%s\n' "$out" | sed 's/^/    /'
n_ok=$(printf '%s\n' "$out" | grep -c '^ok - ')
n_bad=$(printf '%s\n' "$out" | grep -c '^not ok')
if [ "$n_bad" -eq 0 ] && [ "$n_ok" -ge 10 ]; then
	ok "$n_ok broken copies of META.json are refused, each for its reason"
else
	not_ok "broken copies of META.json are refused, each for its reason" "$n_bad not refused"
fi
is "META.json's license is the PostgreSQL License, as LICENSE and debian/copyright" \
	"$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["license"])' "$here/META.json")|$(head -1 "$here/LICENSE")|$(sed -n 's/^License: //p' "$here/debian/copyright")" \
	"postgresql|PostgreSQL License|PostgreSQL"

# --- the install guide ----------------------------------------------------------
is "the install guide (${guide#"$here"/}) has the three blocks: deb, pgxn, source" \
	"$([ -n "$(block deb)" ] && [ -n "$(block pgxn)" ] && [ -n "$(block source)" ] && echo yes)" yes

# --- 3. Debian packages -------------------------------------------------------
lg_say "packaging: Debian packages"
deb=$work/deb
mkdir -p "$deb"
# copy NAME: a scratch copy of the tree at $work/NAME, ours
copy() {
	local c
	c=$(lg_scratch_copy "$here")
	mv "$c" "$work/$1"
	chown -R "$(id -u):$(id -g)" "$work/$1"
	echo "$work/$1"
}
copy deb/src >/dev/null
versions=$(cd "$deb/src" && pg_buildext supported-versions | tr '\n' ' ')
versions=${versions% }
debian_made=yes
for v in $versions; do
	dpkg -S "/usr/lib/postgresql/$v/bin/postgres" >/dev/null 2>&1 || debian_made=no
done
is "pg_buildext supported-versions ($versions) are PostgreSQL servers from Debian packages" \
	"$([ -n "$versions" ] && echo $debian_made)" yes
cp "$deb/src/debian/control" "$work/control.committed"
(cd "$deb/src" && pg_buildext updatecontrol)
is "debian/control is what pg_buildext updatecontrol writes here (from debian/control.in)" \
	"$(diff "$work/control.committed" "$deb/src/debian/control" && echo same)" same
for v in $versions; do
	if dpkg-query -W -f='${Status}' "postgresql-$v-lambdaguard" 2>/dev/null | grep -q "ok installed"; then
		not_ok "postgresql-$v-lambdaguard is not installed before the suite (remove it first)"
		summary packaging
		exit 1
	fi
done

# the extension's files in the PostgreSQL directories of every version we touch
ext_files() {
	local v lib share
	for v in $(echo "$versions $LG_PG_MAJOR" | tr ' ' '\n' | sort -u); do
		lib=/usr/lib/postgresql/$v/lib
		share=/usr/share/postgresql/$v/extension
		ls -d "$lib"/*lambdaguard* "$lib"/bitcode/*lambdaguard* "$share"/*lambdaguard* 2>/dev/null
	done
}
nothing_left() {
	is "$1: nothing of pg_lambdaguard is left in the PostgreSQL directories" "$(ext_files | tr '\n' ' ')" ""
}
# move_aside / put_back: an earlier install's files, around steps 3 to 5
move_aside() {
	if [ -n "${LG_INSTALL_LOCK:-}" ]; then
		exec 9>"$LG_INSTALL_LOCK"
		flock 9
	fi
	locked=yes
	local files
	files=$(ext_files)
	if [ -n "$files" ]; then
		saved=$work/saved.tar
		# shellcheck disable=SC2086
		lg_root tar -C / -cf "$saved" $(echo "$files" | sed 's|^/||') && lg_root rm -rf $files
		echo "# moved aside for the suite, put back at its end: $(echo "$files" | wc -l) paths"
	fi
}
put_back() {
	local p files
	for p in $(dpkg-query -W -f='${Package} ${Status}\n' 'postgresql-*-lambdaguard' 'pg-lambdaguard-*' 2>/dev/null |
		grep ' installed$' | cut -d' ' -f1); do
		lg_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 purge -y -qq "$p" >/dev/null 2>&1
	done
	files=$(ext_files)
	# shellcheck disable=SC2086
	if [ -n "$files" ]; then lg_root rm -rf $files; fi
	if [ -n "$saved" ]; then lg_root tar -C / -xf "$saved"; fi
	if [ -n "${LG_INSTALL_LOCK:-}" ]; then exec 9>&-; fi
	locked=""
	saved=""
}

move_aside
out=$(run_block deb "$deb/src" 2>&1)
rc=$?
printf '%s\n' "$out" | grep -E '^dpkg-deb: building|^(Setting up|Unpacking) .*lambdaguard|error|Error' | sed 's/^/    /'
if [ "$rc" -eq 0 ]; then ok "the install guide's deb block builds the packages and installs them"; else
	not_ok "the install guide's deb block builds the packages and installs them" "$(printf '%s\n' "$out" | tail -30)"
fi
debs=$(cd "$deb" && ls ./*.deb 2>/dev/null | tr '\n' ' ')
expected=""
for v in $versions; do expected="$expected./postgresql-$v-lambdaguard-dbgsym_${release}_$(dpkg --print-architecture).deb ./postgresql-$v-lambdaguard_${release}_$(dpkg --print-architecture).deb "; done
is "one package per supported version, and the two architecture-independent ones" \
	"$(echo "$debs" | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/^ *//')" \
	"$(echo "./pg-lambdaguard-managed_${release}_all.deb ./pg-lambdaguard-monitoring_${release}_all.deb $expected" | tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ' ')"

# lintian, as an unprivileged user (it warns when run as root)
chmod -R a+rX "$deb"
out=$(cd "$deb" && lg_as_server_user lintian --fail-on error --display-info --pedantic ./*.changes 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/    lintian: /'
is "lintian --fail-on error on the source and binary packages" "$rc" 0
is "lintian reports no error and no warning" "$(printf '%s\n' "$out" | grep -cE '^[EW]: ')" 0

lg_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
	"$deb"/pg-lambdaguard-managed_*.deb "$deb"/pg-lambdaguard-monitoring_*.deb >/dev/null 2>&1
for v in $versions; do
	is "PostgreSQL $v's pg_lambdaguard.so is the package's" \
		"$(dpkg -S "/usr/lib/postgresql/$v/lib/pg_lambdaguard.so" 2>&1)" \
		"postgresql-$v-lambdaguard: /usr/lib/postgresql/$v/lib/pg_lambdaguard.so"
	is "postgresql-$v-lambdaguard installs the control file, every SQL script and the bitcode" \
		"$(dpkg -L "postgresql-$v-lambdaguard" | grep -E '\.(control|sql|so)$|index\.bc$' | sed 's|.*/||' | sort | tr '\n' ' ')" \
		"$( (cd "$here" && ls pg_lambdaguard.control pg_lambdaguard--*.sql; printf '%s\n' pg_lambdaguard.so pg_lambdaguard.index.bc) | sort | tr '\n' ' ')"
done
same=yes
for f in "$here"/managed/*.sql; do
	cmp -s "$f" "/usr/share/pg-lambdaguard-managed/${f##*/}" || same="no: ${f##*/}"
done
is "pg-lambdaguard-managed holds managed/*.sql in /usr/share/pg-lambdaguard-managed" "$same" yes
same=yes
for f in queries.yaml alerts.yml grafana-dashboard.json; do
	cmp -s "$here/monitoring/$f" "/usr/share/pg-lambdaguard-monitoring/$f" || same="no: $f"
done
is "pg-lambdaguard-monitoring holds the monitoring files in /usr/share/pg-lambdaguard-monitoring" "$same" yes

# the autopkgtest, from the unpacked source package as autopkgtest runs it
lg_say "packaging: the regression suite against the installed packages (debian/tests/installcheck)"
# the worker's tests (0xx) but the 60-second soak, and the upgrade ones (4xx)
tap_tests=${PACKAGING_TAP_TESTS:-$(cd "$here" && ls t/0*.pl t/4*.pl 2>/dev/null | grep -v soak | tr '\n' ' ')}
tap_tests=${tap_tests% }
(cd "$work" && dpkg-source -q -x "$deb"/pg-lambdaguard_*.dsc autopkgtest-src >/dev/null 2>&1)
if [ -x "$work/autopkgtest-src/debian/tests/installcheck" ]; then
	rc=0
	(cd "$work/autopkgtest-src" && PROVE_TESTS="$tap_tests" debian/tests/installcheck) >"$work/installcheck.log" 2>&1 || rc=$?
	grep -E '^(ok|not ok) |^# (All|[0-9]+ of)|tests passed|failed|^t/.*\.\.|^Result|^### ' "$work/installcheck.log" | sed 's/^/    /'
	if [ "$rc" -eq 0 ]; then ok "pg_regress, isolation and TAP ($tap_tests) pass against the installed package"; else
		not_ok "pg_regress, isolation and TAP ($tap_tests) pass against the installed package" "$(tail -60 "$work/installcheck.log")"
	fi
	is "... and built nothing (no compiler ran)" "$(grep -cE '(gcc|clang)[^ ]* .* -c ' "$work/installcheck.log")" 0
else
	not_ok "the source package unpacks with debian/tests/installcheck"
fi
for v in $versions; do
	is "... and postgresql-$v-lambdaguard's files are unchanged (dpkg --verify)" "$(dpkg --verify "postgresql-$v-lambdaguard" 2>&1)" ""
done

lg_say "packaging: pg_dump / pg_restore of a database with the C edition"
chown postgres: "$work" 2>/dev/null
for v in $versions; do
	sub "dump_restore c" lg_as_server_user env LG_PG_BIN="/usr/lib/postgresql/$v/bin" SRC="$here" WORK="$work" \
		bash "$here/test/packaging/dump_restore.sh" c
done

out=$(lg_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 purge -y -qq \
	$(for v in $versions; do echo "postgresql-$v-lambdaguard"; done) pg-lambdaguard-managed pg-lambdaguard-monitoring 2>&1)
is "the packages are purged" "$?" 0
nothing_left "after apt-get purge"
is "after apt-get purge: /usr/share/pg-lambdaguard-managed, /usr/share/pg-lambdaguard-monitoring and the docs are gone" \
	"$(ls -d /usr/share/pg-lambdaguard-* /usr/share/doc/*lambdaguard* 2>/dev/null | tr '\n' ' ')" ""

# --- 4. PGXN ---------------------------------------------------------------------
lg_say "packaging: the PGXN release archive, installed with pgxnclient"
# a git repository of the tree as it is now, uncommitted changes included
pgxn_src=$(copy pgxn-src)
(cd "$pgxn_src" && git init -q && git add -A && git -c user.name=packaging -c user.email=packaging@localhost \
	commit -qm "the tree under test") >/dev/null
out=$(run_block pgxn "$pgxn_src" 2>&1)
rc=$?
printf '%s\n' "$out" | grep -E 'INFO|ERROR|error' | sed 's/^/    /'
if [ "$rc" -eq 0 ]; then ok "the install guide's pgxn block makes the archive and installs it"; else
	not_ok "the install guide's pgxn block makes the archive and installs it" "$(printf '%s\n' "$out" | tail -30)"
fi
zip=$pgxn_src/pg_lambdaguard-$release.zip
is "the archive is pg_lambdaguard-$release.zip, every file under pg_lambdaguard-$release/" \
	"$(unzip -Z1 "$zip" 2>&1 | grep -vc "^pg_lambdaguard-$release/")|$(unzip -Z1 "$zip" | grep -cE "^pg_lambdaguard-$release/(META.json|LICENSE|Makefile|pg_lambdaguard.control)$")" "0|4"
is "the archive holds the tree's files and no build output" \
	"$(unzip -Z1 "$zip" | sed "s|^pg_lambdaguard-$release/||; /\/$/d; /^$/d" | sort | md5sum)" \
	"$(cd "$pgxn_src" && git ls-files | sort | md5sum)"
is "the archive's META.json is valid" \
	"$(mkdir -p "$work/unzipped" && unzip -q -o "$zip" -d "$work/unzipped" && /usr/bin/python3 "$here/test/pgxn/check_meta.py" "$work/unzipped/pg_lambdaguard-$release/META.json" >/dev/null && echo valid)" valid
is "pgxn installed into PostgreSQL $LG_PG_MAJOR (--pg_config), files of no package" \
	"$(ls "$("$LG_PG_CONFIG" --pkglibdir)/pg_lambdaguard.so" 2>&1)|$(dpkg -S "$("$LG_PG_CONFIG" --pkglibdir)/pg_lambdaguard.so" >/dev/null 2>&1 || echo none)" \
	"$("$LG_PG_CONFIG" --pkglibdir)/pg_lambdaguard.so|none"
sub "installed (pgxn install)" as_server bash "$here/test/packaging/installed.sh" "pgxn install" "$extversion"
out=$(cd "$pgxn_src" && lg_root pgxn uninstall --pg_config "$LG_PG_CONFIG" "./pg_lambdaguard-$release.zip" 2>&1)
is "pgxn uninstall" "$?" 0
nothing_left "after pgxn uninstall"

# --- 5. from source ------------------------------------------------------------------
lg_say "packaging: from source (make, make install)"
source_src=$(copy source-src)
out=$(run_block source "$source_src" 2>&1)
rc=$?
if [ "$rc" -eq 0 ]; then ok "the install guide's source block builds and installs"; else
	not_ok "the install guide's source block builds and installs" "$(printf '%s\n' "$out" | tail -30)"
fi
sub "installed (make install)" as_server bash "$here/test/packaging/installed.sh" "make install" "$extversion"
out=$(lg_root make -C "$source_src" -s PG_CONFIG="$LG_PG_CONFIG" uninstall 2>&1)
is "make uninstall" "$?" 0
nothing_left "after make uninstall"
put_back

# --- 6. the managed edition --------------------------------------------------------
lg_say "packaging: pg_dump / pg_restore of a database with the managed edition"
# its pg_tle content (the first $_pgtle_$ block) as a plain extension,
# superuser = false as pg_tle's are, under a name of its own
awk '/^\$_pgtle_\$$/ { n++; next } n == 1' "$here/managed/pg_lambdaguard_managed--pgtle.sql" >"$work/managed-ext.sql"
is "the pg_tle package's content is managed/pg_lambdaguard_managed.sql" \
	"$(cmp "$work/managed-ext.sql" "$here/managed/pg_lambdaguard_managed.sql" && echo same)" same
printf "comment = 'pg_lambdaguard_managed, its pg_tle content (packaging test copy)'\ndefault_version = '1.1'\nrelocatable = false\nsuperuser = false\n" \
	>"$work/managed-ext.control"
lg_root install -m 644 "$work/managed-ext.control" "$sharedir15/extension/$managed_ext.control"
lg_root install -m 644 "$work/managed-ext.sql" "$sharedir15/extension/$managed_ext--1.1.sql"
chown postgres: "$work" 2>/dev/null
sub "dump_restore managed" as_server env EXT_NAME="$managed_ext" bash "$here/test/packaging/dump_restore.sh" managed
rm -f "$sharedir15/extension/$managed_ext.control" "$sharedir15/extension/$managed_ext--1.0.sql"
if [ -f "$("$LG_PG_CONFIG" --pkglibdir)/pg_tle.so" ]; then
	sub "dump_restore pgtle" as_server bash "$here/test/packaging/dump_restore.sh" pgtle
else
	echo "# the pg_tle package with pg_tle itself: skipped, pg_tle is not installed for PostgreSQL $LG_PG_MAJOR" \
		"(Debian does not package it; its source, aws/pg_tle, builds with PGXS)"
fi

# --- the tree ----------------------------------------------------------------------------
is "no build output in the source tree (debian/.debhelper, debian/files, packages)" \
	"$(cd "$here" && ls -d debian/.debhelper debian/files debian/*.substvars debian/debhelper-build-stamp \
		debian/postgresql-*-lambdaguard*/ debian/pg-lambdaguard-*/ ../pg-lambdaguard_* ./*.zip 2>/dev/null | tr '\n' ' ')" ""

echo "# packaging took $(($(date +%s) - started)) s"
summary packaging
