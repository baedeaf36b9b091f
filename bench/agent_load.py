"""Room agent load: CPU and memory of one agent process as a real room runs it.

    python -m bench.agent_load --width 1280 --height 720 --seconds 30

A coordinator and a chair room (ubnd, the test source at 640x360 15 fps, the
reference program picture) run as usual. The measured room holds the floor,
so it sends its camera and receives the chair's program picture and sound
(the reference slots). Its camera is ``test-raw``: raw pictures at the given
size that aiortc's VP8 encoder encodes, as it would a USB camera's. With
``--tv`` (the default) it decodes what it receives, mixes the sound for the
speaker and composes the TV through SDL2 (``SDL_VIDEODRIVER=dummy``). CPU is
read from /proc (100 % = one core), memory is the resident set (VmRSS).
One JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import httpx

from tests.harness import Agent, Coordinator, free_port, sample, wait_for

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--no-tv", dest="tv", action="store_false", help="a simulated room: no decoding, no TV")
    parser.add_argument("--idle", action="store_true", help="no meeting: the idle screen only")
    parser.add_argument(
        "--one-quality", dest="two_qualities", action="store_false", help="send the picture in one quality only"
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="phonghop-agent-load-"))
    coordinator = Coordinator(folder / "coordinator")
    agents: list[Agent] = []
    try:
        coordinator.start()
        chair = Agent(coordinator, "ubnd", coordinator.enroll("ubnd", "hall"), folder / "ubnd").start()
        agents.append(chair)
        extra = (
            f'[devices]\ncamera = "test-raw"\ncamera_width = {args.width}\ncamera_height = {args.height}\n'
            f"camera_fps = {args.fps}\n"
        )
        env = {}
        extra += f"[media]\ndecode = {str(args.tv).lower()}\ntwo_qualities = {str(args.two_qualities).lower()}\n"
        if args.tv:
            extra += "[display]\nenabled = true\nfullscreen = false\n"
            env["SDL_VIDEODRIVER"] = "dummy"
        room = Agent(
            coordinator, "tdp-01", coordinator.enroll("tdp-01"), folder / "tdp-01", extra, free_port(), env
        ).start()
        agents.append(room)
        if not args.idle:
            meeting = coordinator.schedule(["tdp-01"])

            def joined() -> bool:
                metrics = coordinator.metrics()
                return all(
                    sample(metrics, "phonghop_room_in_meeting", room=r, meeting=str(meeting)) == 1
                    for r in ("ubnd", "tdp-01")
                )

            wait_for(joined, 60, "both rooms in the meeting")
            with coordinator.api() as api:
                api.put(f"/api/v1/meetings/{meeting}/floor", json={"room": "tdp-01"}).raise_for_status()
        else:
            wait_for(
                lambda: (
                    sample(coordinator.metrics(), "phonghop_room_up", room="tdp-01", group="residential_group") == 1
                ),
                60,
                "tdp-01 up",
            )
        time.sleep(args.warmup)
        assert room.proc is not None
        pid = room.proc.pid
        before_cpu, before = cpu_seconds(pid), time.monotonic()
        before_bytes = _bytes(coordinator)
        peak = 0.0
        while time.monotonic() - before < args.seconds:
            peak = max(peak, rss_mib(pid))
            time.sleep(1)
        cpu = (cpu_seconds(pid) - before_cpu) / (time.monotonic() - before)
        after_bytes = _bytes(coordinator)
        elapsed = time.monotonic() - before
        program_seen = room.decoded(["ubnd"])[0] if args.tv else None
        print(
            json.dumps(
                {
                    "send": f"{args.width}x{args.height}@{args.fps}",
                    "tv": args.tv,
                    "qualities": 2 if args.two_qualities else 1,
                    "meeting": not args.idle,
                    "cpu_percent": round(cpu * 100, 1),
                    "rss_mib_peak": round(peak, 1),
                    "sent_kbps": round((after_bytes[0] - before_bytes[0]) * 8 / elapsed / 1000),
                    "received_kbps": round((after_bytes[1] - before_bytes[1]) * 8 / elapsed / 1000),
                    "program_seen": program_seen,
                }
            ),
            flush=True,
        )
    finally:
        for agent in agents:
            agent.stop()
        coordinator.stop()


def _bytes(coordinator: Coordinator) -> tuple[float, float]:
    text = httpx.get(f"{coordinator.url}/metrics", timeout=5).text
    from tests.harness import parse_metrics

    metrics = parse_metrics(text)
    sent = sum(
        v
        for (name, labels), v in metrics.items()
        if name == "phonghop_rtp_bytes_total" and ("room", "tdp-01") in labels and ("direction", "in") in labels
    )
    received = sum(
        v
        for (name, labels), v in metrics.items()
        if name == "phonghop_rtp_bytes_total" and ("room", "tdp-01") in labels and ("direction", "out") in labels
    )
    return sent, received


if __name__ == "__main__":
    main()
