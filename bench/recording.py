"""What recording costs: the coordinator's CPU with the demo meeting recorded and not, and bytes per hour.

python -m bench.recording [--rooms 28] [--seconds 30] [--out docs/bench-recording.jsonl]

Runs ``phonghop demo`` twice, its meeting recorded and not, waits until every room is in it, and reads
the coordinator's CPU (``process_cpu_seconds_total``) over the same window; with recording on, the bytes
written in that window (``phonghop_recording_bytes``) give the size of an hour.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.harness import Samples, free_port, parse_metrics, sample


def _metrics(base: str) -> Samples:
    return parse_metrics(httpx.get(f"{base}/metrics", timeout=5).text)


def one_run(rooms: int, seconds: float, record: bool) -> dict[str, object]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = Path(tempfile.mkdtemp(prefix="bench-recording-"))
    args = [sys.executable, "-m", "phonghop.cli", "demo", "--port", str(port), "--data-dir", str(data)]
    args += ["--start-in", "1", "--rooms", str(rooms)] + ([] if record else ["--no-record"])
    demo = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(0.5)
            try:
                metrics = _metrics(base)
            except httpx.HTTPError:
                continue
            states = [v for (name, _), v in metrics.items() if name == "phonghop_room_in_meeting"]
            if len(states) == rooms and all(states):
                break
        else:
            raise SystemExit(f"the rooms did not all join; see {data}")
        time.sleep(5)  # past the start's keyframes
        before = _metrics(base)
        time.sleep(seconds)
        after = _metrics(base)
        cpu = (sample(after, "process_cpu_seconds_total") or 0) - (sample(before, "process_cpu_seconds_total") or 0)
        written = sum(v for (name, _), v in after.items() if name == "phonghop_recording_bytes") - sum(
            v for (name, _), v in before.items() if name == "phonghop_recording_bytes"
        )
        return {
            "rooms": rooms,
            "recording": record,
            "cpu_pct": round(cpu / seconds * 100, 1),
            "recording_mb_per_hour": round(written / seconds * 3600 / 1e6, 1) if record else None,
        }
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=28)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--label", default="quiet", help="what else ran on the machine")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for record in (False, True):
        result = {"label": args.label, **one_run(args.rooms, args.seconds, record)}
        print(json.dumps(result), flush=True)
        if args.out:
            with args.out.open("a") as out:
                out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
