"""The demo commune for an hour under changes: does the coordinator stay flat?

    python -m bench.soak --minutes 60 --out docs/bench-soak.jsonl

Runs ``phonghop demo`` (28 simulated rooms, its meeting), and once every room
is in the meeting: gives the floor to the next room every 30 s (and back to
the chair every fourth time), and every 5 minutes (``--kill-every``) kills one room's agent
(SIGKILL, like a laptop losing power) and starts it again, timing how long the
room takes to be back in the meeting. Every 30 s it samples the coordinator
process (resident memory, threads, open files, from /proc) and its asyncio
tasks (``phonghop_coordinator_tasks``) and C heap (``phonghop_coordinator_heap_bytes``, in use and
kept free). One JSON line per sample, and a
summary line at the end: growth after the warm-up and errors logged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.harness import free_port, parse_metrics, sample

FLOOR_EVERY = 30.0
SAMPLE_EVERY = 30.0
WARMUP = 300.0  # growth is measured from the first sample after this
HEAP = "phonghop_coordinator_heap_bytes"


def _pids_with(fragment: str) -> list[int]:
    """Processes whose command line contains ``fragment``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if fragment in command:
                found.append(int(entry.name))
    return found


def _process(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {
        "rss_mib": round(int(status["VmRSS"].split()[0]) / 1024, 1),
        "threads": int(status["Threads"]),
        "open_files": len(os.listdir(f"/proc/{pid}/fd")),
    }


def _mib(value: float | None) -> float:
    return round((value or 0) / 2**20, 1)


class Soak:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "phonghop.cli",
                "demo",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--start-in",
                "5",
                "--meeting-minutes",
                "600",
            ],
            stdout=(data_dir / "demo.out").open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.restarted: list[subprocess.Popen[bytes]] = []

    def api(self) -> httpx.Client:
        token = (self.data_dir / "operator.token").read_text().strip()
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def running(self) -> dict[str, Any] | None:
        with self.api() as api:
            meetings = [m for m in api.get("/api/v1/meetings").json() if m.get("running")]
        return meetings[0] if meetings else None

    def coordinator_pid(self) -> int:
        [pid] = _pids_with(f"-m coordinator --port {self.port}")
        return pid

    def sample(self) -> dict[str, Any]:
        metrics = parse_metrics(httpx.get(f"{self.base}/metrics", timeout=10).text)
        return {
            **_process(self.coordinator_pid()),
            "tasks": int(sample(metrics, "phonghop_coordinator_tasks") or 0),
            # malloc's heap: what is in use, and what it keeps free (trimmed once a minute)
            **{f"heap_{state}_mib": _mib(sample(metrics, HEAP, state=state)) for state in ("in_use", "free")},
            "rooms_in_meeting": int(sum(v for k, v in metrics.items() if k[0] == "phonghop_room_in_meeting")),
        }

    def kill_and_restart(self, room: str, meeting: int) -> float:
        """SIGKILL the room's agent, start it again; seconds until it is back in the meeting."""
        config = self.data_dir / "rooms" / room / "agent.toml"
        for pid in _pids_with(f"--config {config}"):
            os.kill(pid, signal.SIGKILL)
        with (config.parent / "agent.log").open("ab") as log:
            self.restarted.append(
                subprocess.Popen(
                    [sys.executable, "-m", "node_agent", "run", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        started = time.monotonic()
        while time.monotonic() - started < 120:
            metrics = parse_metrics(httpx.get(f"{self.base}/metrics", timeout=10).text)
            if sample(metrics, "phonghop_room_in_meeting", room=room, meeting=str(meeting)) == 1:
                return time.monotonic() - started
            time.sleep(0.25)
        return float("inf")

    def stop(self) -> None:
        for proc in self.restarted:
            proc.kill()
        self.demo.send_signal(signal.SIGINT)
        try:
            self.demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.demo.kill()


def _errors(data_dir: Path) -> list[str]:
    log = data_dir / "coordinator.log"
    return [line for line in log.read_text(errors="replace").splitlines() if " ERROR " in line or "Traceback" in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--kill-every", type=float, default=300, help="seconds between two killed rooms")
    parser.add_argument("--out", type=Path, help="append the JSON lines here too")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="phonghop-soak-"))
    soak = Soak(data_dir, free_port())
    out = args.out.open("a") if args.out else None

    def emit(record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False)
        print(line, flush=True)
        if out is not None:
            out.write(line + "\n")
            out.flush()

    try:
        began = time.monotonic()
        while True:
            if soak.demo.poll() is not None:
                raise SystemExit(f"the demo exited; see {data_dir}")
            try:
                running = soak.running()
            except (httpx.HTTPError, OSError):
                running = None
            if running and running["running"]["joined"] and not running["running"]["missing"]:
                break
            time.sleep(1)
        meeting, chair = running["id"], running["chair_room"]
        rooms = sorted(room for room in running["running"]["joined"] if room != chair)
        emit(
            {
                "event": "ready",
                "seconds": round(time.monotonic() - began, 1),
                "rooms": len(rooms) + 1,
                "dir": str(data_dir),
            }
        )
        start = time.monotonic()
        floors = itertools.cycle([*rooms[:3], None])  # three rooms, then the chair again
        victims = itertools.cycle(rooms)
        next_floor = next_sample = start
        next_kill = start + args.kill_every
        baseline: dict[str, Any] | None = None
        last: dict[str, Any] = {}
        back: list[float] = []
        while (now := time.monotonic()) - start < args.minutes * 60:
            if now >= next_sample:
                last = {"minute": round((now - start) / 60, 1), **soak.sample()}
                if baseline is None and now - start >= WARMUP:
                    baseline = last
                emit(last)
                next_sample += SAMPLE_EVERY
            if now >= next_floor:
                target = next(floors)
                with soak.api() as api:
                    path = f"/api/v1/meetings/{meeting}/floor"
                    (api.put(path, json={"room": target}) if target else api.delete(path)).raise_for_status()
                next_floor += FLOOR_EVERY
            if now >= next_kill:
                room = next(victims)
                seconds = soak.kill_and_restart(room, meeting)
                back.append(seconds)
                emit({"event": "room killed and restarted", "room": room, "back_in_meeting_s": round(seconds, 1)})
                next_kill += args.kill_every
            time.sleep(0.5)
        growth = {
            key: round(100 * (last[key] - baseline[key]) / baseline[key], 1) if baseline and baseline[key] else None
            for key in ("rss_mib", "heap_in_use_mib", "threads", "open_files", "tasks")
        }
        errors = _errors(data_dir)
        emit({"event": "summary", "minutes": args.minutes, "growth_percent_after_warmup": growth,
              "rooms_back": f"{sum(b < 120 for b in back)}/{len(back)}", "back_max_s": round(max(back, default=0), 1),
              "errors_logged": len(errors), "first_errors": errors[:3]})  # fmt: skip
    finally:
        soak.stop()
        if out is not None:
            out.close()


if __name__ == "__main__":
    main()
