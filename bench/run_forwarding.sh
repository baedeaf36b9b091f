#!/usr/bin/env bash
# The forwarding benchmark series of docs/BENCHMARKS.md; one JSON line per run.
# --rooms is how many rooms publish. With publish control only the chair and the
# floor holder send (rooms=2); rooms=28 is every room sending, the worst case.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
run() { timeout 900 "$PY" -m bench.sfu "$@" --seconds "$SECONDS_PER_RUN" 2>/dev/null | tail -1; }
run --mode sfu --rooms 2 --subscribers 28
run --mode relay --rooms 2 --subscribers 28
run --mode sfu --rooms 28 --subscribers 28
run --mode relay --rooms 2 --subscribers 8
run --mode relay --rooms 2 --subscribers 16
run --mode sfu --rooms 2 --subscribers 56
run --mode sfu --rooms 2 --subscribers 112
