#!/bin/sh
# Runs every fuzz target of the repository (each `func Fuzz…` in a
# *_test.go), one after another, each for FUZZTIME, and prints one line a
# target: its result, execs and new interesting inputs. docs/fuzzing.md
# holds the figures of the last run. CI does not run it: it takes the
# number of targets times FUZZTIME.
#
# Usage: scripts/fuzz.sh [REGEXP]   only the targets whose name matches
#                                   (an awk ERE, e.g. '^FuzzHandle')
# Env:   FUZZTIME      per target, as go test -fuzztime takes it (default 60s)
#        FUZZPARALLEL  fuzzing workers per target (default 1: one core)
#        FUZZLOG       directory for each target's full output (default a
#                      new temporary directory, printed at the end)
#        FUZZFLAGS     more go test flags, e.g. "-fuzzminimizetime 5s": with
#                      one worker, fuzzing pauses while Go minimizes each new
#                      interesting input (up to 60s by default)
#
# A failing input is written by Go to <package>/testdata/fuzz/<Target>/;
# keep it, and it runs with every plain `go test` after the fix.
set -eu
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-60s}
parallel=${FUZZPARALLEL:-1}
pattern=${1:-.}
logdir=${FUZZLOG:-$(mktemp -d "${TMPDIR:-/tmp}/serfdeploy-fuzz.XXXXXX")}
mkdir -p "$logdir"

# One "package target" line per fuzz target, in a stable order.
targets=$logdir/targets
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	pkg=$(dirname "$file")
	sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file" | while read -r name; do
		echo "$pkg $name"
	done
done | awk -v re="$pattern" '$2 ~ re' >"$targets"
if [ ! -s "$targets" ]; then
	echo "fuzz.sh: no fuzz target matches $pattern" >&2
	exit 2
fi

failed=0
printf '%-12s %-40s %-6s %14s %16s\n' PACKAGE TARGET RESULT EXECS "NEW INTERESTING"
while read -r pkg name; do
	out=$logdir/$(echo "${pkg#./}" | tr '/' '_')_$name.log
	# shellcheck disable=SC2086 # FUZZFLAGS is a list of words
	if go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -parallel "$parallel" ${FUZZFLAGS:-} "$pkg/" >"$out" 2>&1; then
		result=ok
	else
		result=FAIL
		failed=$((failed + 1))
	fi
	# The last progress line: "fuzz: elapsed: 1m0s, execs: 1234 (20/sec),
	# new interesting: 5 (total: 40)".
	last=$(grep '^fuzz: elapsed' "$out" | tail -n 1 || true)
	execs=$(echo "$last" | sed -n 's/.*execs: \([0-9]*\).*/\1/p')
	interesting=$(echo "$last" | sed -n 's/.*new interesting: \([0-9]*\).*/\1/p')
	printf '%-12s %-40s %-6s %14s %16s\n' "${pkg#./}" "$name" "$result" "${execs:--}" "${interesting:--}"
	if [ "$result" = FAIL ]; then
		grep -E -- '--- FAIL|Failing input written|failure while testing seed|^[[:space:]]+[a-z_]+_test\.go:[0-9]+:' "$out" | head -n 5 | sed 's/^/    /'
	fi
done <"$targets"

echo "full output: $logdir"
if [ "$failed" -gt 0 ]; then
	echo "fuzz.sh: $failed target(s) failed" >&2
	exit 1
fi
