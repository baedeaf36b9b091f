"""`phonghop-agent fleet CONFIG...`: simulated rooms, each in its own process, started at once.

Why: started as separate interpreters, 28 rooms each import aiortc, PyAV and numpy by themselves, and on
two cores that is most of a demo's start. Here the imports happen once and every room is a fork of this
process made after them: still its own process with its own event loop, control connection, token and
peer (what keeps a simulated room honest), with only the loaded code shared. Each room's process is
titled like a lone agent (``phonghop-agent run --config …``), so people and tools find a room's process
the same way, and it dies with the fleet.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from setproctitle import setproctitle

from node_agent.signals import STOP_SIGNALS, Interrupted, stop_while_starting
from phonghop.lifetime import die_with_parent

# What every simulated room imports, loaded once before the forks.
SHARED_IMPORTS = ("node_agent.agent", "node_agent.media", "node_agent.testsource")


def _room(config: Path) -> int:
    """In the forked child: become that room's agent, logging to agent.log beside its config."""
    setproctitle(f"phonghop-agent run --config {config}")
    die_with_parent(signal.SIGKILL)
    log = os.open(config.parent / "agent.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    from node_agent.start import run_agent

    return run_agent(config)


def run_fleet(configs: list[Path]) -> int:
    stop_while_starting()
    try:
        for module in SHARED_IMPORTS:
            importlib.import_module(module)
    except Interrupted:
        return 0
    children: dict[int, Path] = {}

    def forward(signum: int, _frame: FrameType | None) -> None:
        for pid in children:
            os.kill(pid, signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, forward)
    for config in configs:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                stop_while_starting()  # not the fleet's forwarding: a signal here is this room's alone
                code = _room(config)
            except Interrupted:
                code = 0
            finally:
                os._exit(code)
        children[pid] = config
    print(f"phonghop-agent fleet: {len(children)} phòng, mỗi phòng một tiến trình", flush=True)
    while children:
        pid, status = os.wait()
        config = children.pop(pid)
        if os.waitstatus_to_exitcode(status) not in (0, -signal.SIGTERM, -signal.SIGKILL):
            print(f"phonghop-agent fleet: {config} dừng với mã {os.waitstatus_to_exitcode(status)}", flush=True)
    return 0
