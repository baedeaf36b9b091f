"""SIGTERM and SIGINT while the agent starts: stop at once instead of finishing the start.

Start-up takes seconds before the event loop can take signals (imports of
aiortc and FastAPI, pre-encoding the test picture, opening devices), and
Python's defaults are no help there: SIGTERM kills the process without a word
and SIGINT prints a traceback. So the very first thing ``phonghop-agent run``
does is install these handlers; they raise :class:`Interrupted` at the next
Python instruction, which abandons the start. Once every part of the agent is
running, the event loop takes the signals over and stops the parts cleanly.
"""

from __future__ import annotations

import signal
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A stop signal arrived before the agent's parts ran (a BaseException: no ``except Exception`` keeps it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def stop_while_starting() -> None:
    """Make SIGTERM and SIGINT abandon the start (until the event loop installs its own handlers)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)
