#!/usr/bin/env python3
"""Run ansible-playbook the way a technician does and report its recap as JSON.

Why: the scenarios must check what a run *reported* (which hosts changed, how long it took), e.g.
"rooms.yml --limit th-phong-son changes nothing else" or "--check --diff on a converged host reports no
changes". Ansible prints that in its PLAY RECAP; this wrapper keeps the full output in a log file and
prints ``{"rc": .., "seconds": .., "hosts": {name: {"ok":..,"changed":..,"failed":..,..}}, "log": path}``.

Usage: ``playbook_run.py --log FILE -- ansible-playbook ARGS...``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)"
)


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """Counts per host from the PLAY RECAP section (the last one wins if there are several)."""
    hosts: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap:
            match = RECAP_LINE.match(line.strip())
            if match:
                counts = match.groupdict()
                host = counts.pop("host")
                hosts[host] = {key: int(value) for key, value in counts.items()}
    return hosts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="where the full output goes")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_STDOUT_CALLBACK": "default"}
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = round(time.monotonic() - started, 1)
    output = result.stdout + result.stderr
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(command)}\n{output}\n[rc={result.returncode} in {seconds} s]\n")
    report = {"rc": result.returncode, "seconds": seconds, "hosts": parse_recap(output), "log": str(log)}
    if result.returncode != 0:
        report["tail"] = output.splitlines()[-40:]
    json.dump(report, sys.stdout)
    print()


if __name__ == "__main__":
    main()
