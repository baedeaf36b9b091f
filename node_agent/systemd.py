"""systemd's notify protocol: READY, WATCHDOG and STOPPING, sent from the event loop.

The protocol is one datagram on the unix socket named by ``$NOTIFY_SOCKET``;
the maintained Python packages for it either need libsystemd headers to build
(systemd-python) or are unmaintained (sdnotify), so these few lines do it.
The watchdog pings come from a task on the agent's event loop: when the loop
hangs, the pings stop and systemd restarts the agent (``WatchdogSec=``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send one state line (e.g. "READY=1"); False when not running under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode("utf-8"), address)
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", state.split("=")[0], exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for, or None when there is no watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        return max(0.05, int(usec) / 2_000_000)
    except ValueError:
        return None


async def watchdog(stop: asyncio.Event) -> None:
    """Ping systemd's watchdog from the event loop until ``stop`` is set."""
    interval = watchdog_interval()
    if interval is None:
        return
    log.info("systemd watchdog: pinging every %.1f s", interval)
    while not stop.is_set():
        notify("WATCHDOG=1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
