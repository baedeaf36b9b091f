"""`phonghop`: project-level commands (the demo commune, the uptime report)."""

from __future__ import annotations

import argparse
import sys

from phonghop import demo, uptime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="phonghop", description="Phòng họp trực tuyến")
    sub = parser.add_subparsers(dest="command", required=True)
    demo.add_arguments(sub.add_parser("demo", help="run a whole commune on this machine"))
    uptime.add_arguments(sub.add_parser("uptime", help="each room's availability over a month, from Prometheus"))
    args = parser.parse_args(argv)
    sys.exit(uptime.run(args) if args.command == "uptime" else demo.run(args))


if __name__ == "__main__":
    main()
