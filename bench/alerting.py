"""Fault → notification times of the alerting pipeline with the role's production intervals.

python -m bench.alerting [--short]

Real coordinator, three real agents, Prometheus and Alertmanager from the Debian packages
configured by the monitoring role from the inventory (scrape and evaluation every 15 s,
room offline `for: 3m`, coordinator down `for: 1m`, group_wait 30 s, group_interval 5 m),
and a webhook standing in for the technician. Takes about a quarter of an hour.
``--short`` uses the live test's intervals instead. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.alerting import Timing, live_commune
from tests.harness import sample, wait_for

ROOMS = ("tdp-01", "tdp-02", "tram-y-te")
TIMEOUT = 900


def measure(folder: Path, timing: Timing) -> dict[str, float]:
    with live_commune(folder, timing, ROOMS) as live:
        wait_for(lambda: len(live.stack.query("phonghop_room_up == 1")) == len(ROOMS), 120, "rooms up in Prometheus")

        fault = time.monotonic()
        live.agents["tdp-01"].stop(signal.SIGKILL)
        firing = live.receiver.wait("firing", TIMEOUT, fault, alertname="PhongHopRoomOffline", room="tdp-01")
        live.times["agent killed → firing"] = firing.received - fault
        live.agents["tdp-01"].start()
        up = {"room": "tdp-01", "group": "residential_group"}
        wait_for(lambda: sample(live.coordinator.metrics(), "phonghop_room_up", **up) == 1, 120, "tdp-01 back")
        back = time.monotonic()
        resolved = live.receiver.wait("resolved", TIMEOUT, back, alertname="PhongHopRoomOffline", room="tdp-01")
        live.times["room reconnected → resolved"] = resolved.received - back

        fault = time.monotonic()
        live.coordinator.stop()
        firing = live.receiver.wait("firing", TIMEOUT, fault, alertname="PhongHopCoordinatorDown")
        live.times["coordinator stopped → firing"] = firing.received - fault
        live.coordinator.start()
        back = time.monotonic()
        resolved = live.receiver.wait("resolved", TIMEOUT, back, alertname="PhongHopCoordinatorDown")
        live.times["coordinator serving → resolved"] = resolved.received - back
        storm = {n.labels["alertname"] for n in live.receiver.matching("firing", fault)} - {"PhongHopCoordinatorDown"}
        live.times["other alerts around the coordinator outage"] = float(len(storm))
        print("other alerts:", sorted(storm), file=sys.stderr)
    return live.times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--short", action="store_true", help="the live test's 1 s intervals instead of production")
    args = parser.parse_args()
    timing = Timing() if args.short else Timing.production()
    with tempfile.TemporaryDirectory(prefix="bench-alerting-") as folder:
        times = measure(Path(folder), timing)
    result = {"timing": "short" if args.short else "production", **{k: round(v, 1) for k, v in times.items()}}
    print(json.dumps(result, ensure_ascii=False))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
