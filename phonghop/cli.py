"""`phonghop`: project-level commands (the demo commune)."""

from __future__ import annotations

import argparse
import sys

from phonghop import demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="phonghop", description="Phòng họp trực tuyến")
    sub = parser.add_subparsers(dest="command", required=True)
    demo.add_arguments(sub.add_parser("demo", help="run a whole commune on this machine"))
    args = parser.parse_args(argv)
    sys.exit(demo.run(args))


if __name__ == "__main__":
    main()
