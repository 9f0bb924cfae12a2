#!/usr/bin/env bash
# Fuzzes the list parsers and matchers of pg_lambdaguard (src/common/lg_match.c) with
# libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer.
#
#     bash test/fuzz/run.sh [seconds]     # default 60
#
# From a fresh Debian 12 machine, as root or as a user with sudo: installs
# clang-14 and libclang-rt-14-dev (libFuzzer) when missing, builds
# test/fuzz/fuzz_lists.c with lg_match.c into a temporary directory (never
# into the checkout), and runs it for the given time (-max_total_time) with a
# 2 s per-input timeout on a copy of test/fuzz/corpus/.  Exits 0 when nothing
# was found, after printing the executions, libFuzzer's coverage figures and the
# line/branch coverage of lg_match.c reached by the grown corpus (llvm-cov);
# otherwise prints the sanitizer report or violated invariant, the
# reproducer (hex and C string) and the command that replays it, keeps the
# temporary directory, and exits 1.
#
# Environment:
#   LG_FUZZ_SRC=DIR   fuzz the src/common/lg_match.c and include/lg_match.h found under DIR instead of
#                     the checkout's (to check a proposed fix)
#   LG_FUZZ_MAX_LEN=N longest input tried (default 4096: room for a list of
#                     more than 1000 elements)
#   LG_FUZZ_KEEP=1    keep the temporary directory (grown corpus) even when
#                     nothing was found
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${1:-60}
src=${LG_FUZZ_SRC:-$here}
max_len=${LG_FUZZ_MAX_LEN:-4096}

case $seconds in
	'' | *[!0-9]*) echo "usage: bash test/fuzz/run.sh [seconds]" >&2; exit 2 ;;
esac
[ "$seconds" -ge 1 ] || { echo "seconds must be at least 1" >&2; exit 2; }

. "$here/tools/common.sh"
say() { lg_say "$@"; }

# --- what is needed: clang-14 and its runtime libraries (libFuzzer) --------
lg_install_debian clang-14 libclang-rt-14-dev llvm-14
CC=clang-14
command -v $CC >/dev/null || { echo "clang-14 not found after install" >&2; exit 1; }

# --- build into a temporary directory --------------------------------------
tmp=$(mktemp -d /tmp/lg_fuzz.XXXXXX)
keep=${LG_FUZZ_KEEP:-0}
cleanup() { if [ "$keep" != 1 ]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT

say "building test/fuzz/fuzz_lists.c with $src/src/common/lg_match.c into $tmp"
$CC -g -O1 -fno-omit-frame-pointer -Wall -Wextra \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-I"$src/include" "$here/test/fuzz/fuzz_lists.c" "$src/src/common/lg_match.c" -o "$tmp/fuzz_lists"

mkdir -p "$tmp/corpus" "$tmp/artifacts"
cp "$here"/test/fuzz/corpus/* "$tmp/corpus/"
seeds=$(ls "$tmp/corpus" | wc -l)

# --- run ---------------------------------------------------------------------
say "fuzzing for ${seconds}s ($seeds seed inputs, -timeout=2, -max_len=$max_len)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
(cd "$tmp" && ./fuzz_lists -max_total_time="$seconds" -timeout=2 -max_len="$max_len" \
	-artifact_prefix="$tmp/artifacts/" -print_final_stats=1 corpus) \
	>"$tmp/fuzz.log" 2>&1 || rc=$?

# libFuzzer's progress lines: the seeds, then the last one
grep -E '^#[0-9]+[[:space:]]+INITED' "$tmp/fuzz.log" | tail -1 || true
grep -E '^#[0-9]+[[:space:]]+(DONE|NEW|REDUCE|pulse|RELOAD)' "$tmp/fuzz.log" | tail -1 || true
grep -E '^stat::' "$tmp/fuzz.log" || true
echo "corpus now: $(ls "$tmp/corpus" | wc -l) inputs"

artifacts=$(find "$tmp/artifacts" -type f | sort)
if [ "$rc" -eq 0 ] && [ -z "$artifacts" ]; then
	say "no crash, no timeout in ${seconds}s"
	# source coverage of lg_match.c over the grown corpus (each input once)
	if $CC -O1 -fprofile-instr-generate -fcoverage-mapping -fsanitize=fuzzer \
		-I"$src/include" "$here/test/fuzz/fuzz_lists.c" "$src/src/common/lg_match.c" -o "$tmp/fuzz_cov" 2>/dev/null &&
		(cd "$tmp" && LLVM_PROFILE_FILE="$tmp/cov.profraw" ./fuzz_cov -runs=0 corpus >/dev/null 2>&1) &&
		llvm-profdata-14 merge -sparse "$tmp/cov.profraw" -o "$tmp/cov.profdata" 2>/dev/null; then
		say "coverage of lg_match.c by the corpus ($(ls "$tmp/corpus" | wc -l) inputs)"
		llvm-cov-14 report "$tmp/fuzz_cov" -instr-profile="$tmp/cov.profdata" \
			"$src/src/common/lg_match.c" 2>/dev/null | sed -n '1,3p' || true
	fi
	exit 0
fi

# --- report what was found ---------------------------------------------------
keep=1
say "FOUND a problem (libFuzzer exit code $rc); report:"
# the sanitizer report, the invariant message, or the timeout's stack
sed -n '/^\*\*\* lg_match invariant violated\|^==[0-9]*==ERROR\|^==[0-9]*== ERROR\|runtime error\|ALARM: working on the last Unit\|^SUMMARY/,$p' \
	"$tmp/fuzz.log" | grep -Ev '^(=>)? *0x[0-9a-f]+:|Shadow byte|^  [A-Za-z][A-Za-z ]*: |^stat::|^MS: ' | head -80
for a in $artifacts; do
	say "reproducer $a ($(stat -c %s "$a") bytes)"
	echo "hex:"
	od -An -tx1 -v "$a" | head -40
	echo "as a C string:"
	python3 - "$a" <<'EOF' 2>/dev/null || true
import sys
b = open(sys.argv[1], 'rb').read()
s = ''.join(chr(c) if 32 <= c < 127 and c not in (34, 92) else '\\x%02x' % c for c in b)
print('"' + (s if len(s) <= 2000 else s[:2000] + '..."(truncated)') + '"')
EOF
	echo "replay: $tmp/fuzz_lists $a"
done
echo "full log: $tmp/fuzz.log"
exit 1
