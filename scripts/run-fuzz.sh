#!/bin/sh
# run-fuzz.sh BUILD_DIR SECONDS [TARGET...]: run each libFuzzer target of
# BUILD_DIR (all *_fuzz executables when none is named) for SECONDS, from
# its committed seed corpus (fuzz/corpus/NAME) and dictionary
# (fuzz/dict/NAME.dict, when there is one). New corpus entries go to a
# scratch directory, never into the repository; a crash, leak, timeout or
# out-of-memory leaves its reproducer in the artifacts directory printed
# here and fails the run. Prints each target's final cov/ft counts.
# FUZZ_OUT=DIR keeps the scratch corpus and logs in DIR (else a temporary
# directory, removed when nothing was found).
set -u
build=${1:?usage: run-fuzz.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:?usage: run-fuzz.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
src=$(cd "$(dirname "$0")/.." && pwd)
out=${FUZZ_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/tlsterm-fuzz.XXXXXX")}
mkdir -p "$out"

if [ $# -eq 0 ]; then
    for exe in "$build"/fuzz/*_fuzz; do
        set -- "$@" "$(basename "$exe" _fuzz)"
    done
fi

echo "fuzz: ${seconds}s per target; scratch corpus and artifacts in $out"
failed=""
summary=""
for name in "$@"; do
    exe="$build/fuzz/${name}_fuzz"
    if [ ! -x "$exe" ]; then
        echo "fuzz: no target $exe" >&2
        failed="$failed $name"
        continue
    fi
    mkdir -p "$out/corpus/$name" "$out/artifacts/$name"
    dict=""
    [ -f "$src/fuzz/dict/$name.dict" ] && dict="-dict=$src/fuzz/dict/$name.dict"
    log="$out/$name.log"
    echo "fuzz: $name (log $log)"
    # Targets that read files write each input to one under TMPDIR: a tmpfs
    # makes that ten times faster than a disk.
    target_tmp=$(mktemp -d "$(test -w /dev/shm && echo /dev/shm || echo "${TMPDIR:-/tmp}")/tlsterm-fuzz-$name.XXXXXX")
    # The scratch corpus comes first: libFuzzer writes new inputs there.
    # shellcheck disable=SC2086
    TMPDIR=$target_tmp "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$name/" $dict \
        "$out/corpus/$name" "$src/fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    rm -rf "$target_tmp"
    stats=$(grep -E '^#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 | sed 's/^#\([0-9]*\).*cov: \([0-9]*\) ft: \([0-9]*\).*/runs \1 cov \2 ft \3/')
    summary="$summary
  $name: ${stats:-no final stats}"
    if [ $rc -ne 0 ]; then
        echo "fuzz: $name FAILED (exit $rc); reproducer in $out/artifacts/$name/:" >&2
        ls -l "$out/artifacts/$name" >&2
        # The reproducer dies with the machine it ran on (a CI runner): the
        # log's end (the check that failed, the stack) goes out here.
        grep -E 'ERROR|SUMMARY|runtime error|Assertion|refused' "$log" | head -20 >&2
        echo "fuzz: the end of $log:" >&2
        grep -v -E '^#[0-9]+' "$log" | tail -40 >&2
        for crash in "$out/artifacts/$name"/*; do
            [ -f "$crash" ] || continue
            echo "fuzz: $crash ($(wc -c <"$crash") bytes), gzip | base64 (base64 -d | gunzip to get it back):" >&2
            gzip -9c "$crash" | base64 >&2
        done
        failed="$failed $name"
    fi
done
echo "fuzz: ${seconds}s each:$summary"
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed (artifacts in $out/artifacts)" >&2
    exit 1
fi
# Nothing found: the scratch corpus is dropped unless FUZZ_OUT asked to keep it.
[ -n "${FUZZ_OUT:-}" ] || rm -rf "$out"
