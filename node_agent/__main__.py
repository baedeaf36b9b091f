"""`phonghop-agent`: the room agent (run), its self-test (check), the device list (devices) and many
simulated rooms from one start (fleet)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

DEFAULT_CONFIG = Path("/etc/phonghop/agent.toml")


def _check(config: Path, as_json: bool) -> int:
    """Exit 0 when every check passed, 1 when one failed, 2 when the config cannot be read."""
    import logging

    from node_agent.selftest import run_checks

    logging.basicConfig(level=logging.ERROR)
    report = asyncio.run(run_checks(config))
    print(report.as_json() if as_json else report.text())
    if report.checks and report.checks[0].name == "cau_hinh" and not report.checks[0].ok:
        return 2
    return 0 if report.ok else 1


def _devices(as_json: bool) -> int:
    from node_agent.devices import list_devices

    found = list_devices()
    if as_json:
        print(json.dumps(found.as_dict(), ensure_ascii=False))
        return 0
    for title, devices in (("Camera", found.cameras), ("Micro", found.microphones), ("Loa", found.speakers)):
        print(f"{title}:")
        for device in devices:
            print(f"  {'*' if device.default else ' '} {device.name}  ({device.description})")
        if not devices:
            print("    (không có)")
    for problem in found.problems:
        print(f"Lưu ý: {problem}")
    print('Dấu * là thiết bị được chọn khi cấu hình để "auto".')
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="phonghop-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="connect to the coordinator and serve the room")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    check = sub.add_parser("check", help="self-test: config, token, coordinator, media loop, devices")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    check.add_argument("--json", action="store_true", help="one JSON object instead of the checklist")
    devices = sub.add_parser("devices", help="list the cameras, microphones and speakers found")
    devices.add_argument("--json", action="store_true")
    fleet = sub.add_parser("fleet", help="simulated rooms: one process each, forked from one start")
    fleet.add_argument("configs", type=Path, nargs="+", metavar="CONFIG")
    args = parser.parse_args(argv)
    if args.command == "run":
        from node_agent.start import run_agent

        code = run_agent(args.config)
    elif args.command == "fleet":
        from node_agent.fleet import run_fleet

        code = run_fleet(args.configs)
    elif args.command == "check":
        code = _check(args.config, args.json)
    else:
        code = _devices(args.json)
    sys.exit(code)


if __name__ == "__main__":
    main()
