"""Starting one room's agent: stop signals first, then the imports that take seconds on a room laptop."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


def run_agent(config: Path) -> int:
    from node_agent.signals import Interrupted, stop_while_starting

    stop_while_starting()  # before the imports below, which take seconds on a room laptop
    from node_agent.config import ConfigError

    try:
        from node_agent.agent import run

        return asyncio.run(run(config))
    except ConfigError as exc:
        print(f"phonghop-agent: {exc}", file=sys.stderr)
        return 2
    except Interrupted as stopped:
        print(f"phonghop-agent: {stopped} while starting: stopped", file=sys.stderr)
        return 0
