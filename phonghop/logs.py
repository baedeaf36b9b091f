"""Log format shared by both programs: one line per event, journald-friendly."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str, program: str, context: str = "") -> None:
    prefix = f"{program}[{context}]" if context else program
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {prefix} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
