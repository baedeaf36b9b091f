#!/usr/bin/env bash
# The forwarding benchmark series of docs/BENCHMARKS.md; one JSON line per run.
# --rooms is how many rooms publish: 0 is every room connected and nothing sent (the
# peers' background cost); with publish control a presentation has 2 (the chair and
# the floor holder); 28 is every room sending, the worst case.
# OLD=<checkout> runs the same series' router from another checkout as well, one run
# after the other, so that two data paths are compared on the same machine and day:
#   git worktree add /tmp/old <commit> && OLD=/tmp/old bench/run_forwarding.sh
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-20}
OLD=${OLD:-}
run() { timeout 900 "$PY" -m bench.sfu "$@" --seconds "$SECONDS_PER_RUN" 2>/dev/null | tail -1; }
both() {
  if [ -n "$OLD" ]; then run "$@" --code "$OLD"; fi
  run "$@"
}
if [ -n "$OLD" ]; then run --mode sfu --rooms 0 --subscribers 28 --code "$OLD" --aiortc-rtcp; fi  # rooms as they reported then
both --mode sfu --rooms 0 --subscribers 28
run --mode sfu --rooms 0 --subscribers 1  # the router process alone, for the per-peer share
both --mode sfu --rooms 2 --subscribers 28
both --mode sfu --rooms 28 --subscribers 28
run --mode relay --rooms 2 --subscribers 8
run --mode relay --rooms 2 --subscribers 28
run --mode sfu --rooms 2 --subscribers 56
run --mode sfu --rooms 2 --subscribers 112
run --mode sfu --rooms 2 --subscribers 250
