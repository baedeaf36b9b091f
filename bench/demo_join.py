"""The demo meeting's start: how long until every room is in it, and until every room gets the program.

python -m bench.demo_join [--runs 3] [--rooms 28] [--out docs/bench-demo-join.jsonl]

Runs ``phonghop demo`` (every room connected before the meeting starts) and reads the coordinator's
metrics 20 times a second: per room, when it is in the meeting (``phonghop_room_in_meeting``), and
when the router has sent it program media (``phonghop_rtp_bytes{direction="out"}`` above zero: its
media peer is up and the chair's picture or sound reaches it). Times count from the meeting's start as
the coordinator logs it.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from tests.harness import free_port, parse_metrics

STARTED = re.compile(r"^(\S+ \S+) INFO coordinator coordinator\.live_meetings: meeting \d+ .* running until", re.M)


def one_run(rooms: int) -> dict[str, float]:
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="bench-demo-join-"))
    demo = subprocess.Popen(
        [sys.executable, "-m", "phonghop.cli", "demo", "--port", str(port), "--data-dir", str(data)]
        + (["--rooms", str(rooms)] if rooms else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    joined: dict[str, float] = {}
    media: dict[str, float] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.time() + 120
            expected: list[str] = []
            while time.time() < deadline and (not expected or len(media) < len(expected)):
                time.sleep(0.05)
                try:
                    metrics = parse_metrics(client.get("/metrics").text)
                except httpx.HTTPError:
                    continue
                now = time.time()
                expected = []
                sent: dict[str, float] = {}
                for (name, labels), value in metrics.items():
                    tags = dict(labels)
                    if name == "phonghop_room_in_meeting":
                        expected.append(tags["room"])
                        if value == 1:
                            joined.setdefault(tags["room"], now)
                    elif name == "phonghop_rtp_bytes_total" and tags["direction"] == "out":
                        sent[tags["room"]] = sent.get(tags["room"], 0) + value
                for room, total in sent.items():
                    if total > 0:
                        media.setdefault(room, now)
        log = (data / "coordinator.log").read_text()
        match = STARTED.search(log)
        if match is None or len(media) < len(expected):
            raise SystemExit(f"the meeting did not start or not every room got media; see {data}")
        start = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        return {
            "rooms": len(expected),
            "all_in_meeting_s": round(max(joined.values()) - start, 2),
            "all_in_media_s": round(max(media.values()) - start, 2),
            "median_in_media_s": round(sorted(media.values())[len(media) // 2] - start, 2),
        }
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rooms", type=int, default=0, help="default: every room of the inventory")
    parser.add_argument("--label", default="quiet", help="what else ran on the machine")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for _ in range(args.runs):
        result = {"label": args.label, **one_run(args.rooms)}
        print(json.dumps(result), flush=True)
        if args.out:
            with args.out.open("a") as out:
                out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
