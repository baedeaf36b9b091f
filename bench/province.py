"""The province node's cost per commune: CPU per forwarded packet and link bytes, with real processes.

    python -m bench.province --communes 3 --rooms 1 --seconds 30

A province coordinator and its chair room (the reference test source: 640x360,
15 fps, 500 kbit/s VP8 and Opus) and N commune coordinators, each with
``--rooms`` simulated rooms (a hall and residential groups), in one province
meeting with nobody on the floor. After the
warm-up the province process's CPU time (from /proc, 100 % = one core), the
packets it forwarded and the bytes it sent to and received from each commune
are read over the window. One JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.agent_load import cpu_seconds
from tests.harness import Samples, sample, wait_for
from tests.province_lab import Lab, everyone_up, start_lab

REFERENCE = "[test_source]\nwidth = 640\nheight = 360\nfps = 15\nbitrate = 500000\n"


def _link(metrics: Samples, commune: str) -> dict[str, float]:
    """Bytes the province sent to and received from one commune so far."""
    total = {"down": 0.0, "up": 0.0}
    for direction, key in (("out", "down"), ("in", "up")):
        for kind in ("video", "audio"):
            total[key] += sample(metrics, "phonghop_rtp_bytes_total", room=commune, direction=direction, kind=kind) or 0
    return total


def _measure(lab: Lab, seconds: float) -> dict[str, object]:
    pid = lab.province.proc.pid if lab.province.proc else 0
    communes = list(lab.communes)
    before, cpu_before, started = lab.province.metrics(), cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    after, cpu_after, elapsed = lab.province.metrics(), cpu_seconds(pid), time.monotonic() - started
    forwarded = (sample(after, "phonghop_rtp_packets_forwarded_total") or 0) - (
        sample(before, "phonghop_rtp_packets_forwarded_total") or 0
    )
    cpu = cpu_after - cpu_before
    links = {}
    for commune in communes:
        now, then = _link(after, commune), _link(before, commune)
        links[commune] = {k: (now[k] - then[k]) * 8 / elapsed / 1000 for k in ("down", "up")}
    chair_in = sum(
        (sample(after, "phonghop_rtp_bytes_total", room="tinh-ubnd", direction="in", kind=k) or 0)
        - (sample(before, "phonghop_rtp_bytes_total", room="tinh-ubnd", direction="in", kind=k) or 0)
        for k in ("video", "audio")
    )
    return {
        "communes": len(communes),
        "rooms_per_commune": len(next(iter(lab.communes.values())).rooms),
        "province_cpu_percent": round(100 * cpu / elapsed, 1),
        "forwarded_per_second": round(forwarded / elapsed),
        "us_per_forwarded_packet": round(1e6 * cpu / forwarded, 1) if forwarded else None,
        "chair_in_kbit_s": round(chair_in * 8 / elapsed / 1000),
        "link_kbit_s": {c: {k: round(v) for k, v in link.items()} for c, link in links.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--communes", type=int, default=3)
    parser.add_argument("--rooms", type=int, default=1, help="rooms per commune")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=10)
    args = parser.parse_args()
    communes = {
        f"xa-{i:02d}": [(f"x{i:02d}-ubnd", "hall")]
        + [(f"x{i:02d}-tdp-{r:02d}", "residential_group") for r in range(1, args.rooms)]
        for i in range(1, args.communes + 1)
    }
    folder = Path(tempfile.mkdtemp(prefix="phonghop-province-"))
    lab = start_lab(folder, communes, "[media]\ndecode = false\n", REFERENCE)
    try:
        wait_for(lambda: everyone_up(lab), 180, "every process up", interval=0.5)
        lab.schedule(title="Đo tải")
        wait_for(
            lambda: all(_link(lab.province.metrics(), c)["down"] > 0 for c in communes),
            60,
            "the province program flowing to every commune",
            interval=0.5,
        )
        time.sleep(args.warmup)
        print(json.dumps(_measure(lab, args.seconds)), flush=True)
    finally:
        lab.stop()


if __name__ == "__main__":
    main()
