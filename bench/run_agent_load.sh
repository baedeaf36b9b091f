#!/usr/bin/env bash
# The room agent's load (docs/BENCHMARKS.md, "Room agent"); one JSON line per run.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-30}
run() { timeout 600 "$PY" -m bench.agent_load "$@" --seconds "$SECONDS_PER_RUN" 2>/dev/null | tail -1; }
run --width 1280 --height 720
run --width 640 --height 360
run --width 640 --height 360 --no-tv
run --idle
