#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs one libFuzzer harness for a bounded time, starting from the seed corpus in the source
# tree. New inputs go to a corpus directory in the build tree (the seeds stay untouched); a crash,
# leak or failed invariant exits non-zero with the input saved as an artifact there.
#   run-fuzzer.sh HARNESS SEED_DIR WORK_DIR [libFuzzer options...]
# PACKETSCOPE_FUZZ_SECONDS sets the time (default 10; CI uses 60). The per-input timeout is
# generous on purpose: on a loaded machine a process can sit descheduled for many seconds, and
# a real hang still trips it.
set -eu
harness=$1 seeds=$2 work=$3
shift 3
seconds=${PACKETSCOPE_FUZZ_SECONDS:-10}
here=$(dirname "$0")
# Undefined behaviour fails the run like a crash does, except what ubsan.supp lists. Appended
# to what the caller set (a later option wins), so the suppressions hold under any caller.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1:suppressions=$here/ubsan.supp"
mkdir -p "$work/corpus" "$work/artifacts"
exec "$harness" -max_total_time="$seconds" -timeout=120 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$seeds"
