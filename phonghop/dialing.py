"""Dialling a coordinator's control WebSocket and talking on it: what a room agent and a commune uplink share.

Both sit behind NAT and dial out with a bearer token; reconnection (capped
exponential back-off with jitter) is websockets' own ``async for ... in
connect()``. This module decides what is worth retrying and how a refusal
reads in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Generator
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import backoff
from websockets.exceptions import ConnectionClosed, InvalidStatus

from phonghop.protocol import AnyCoordinatorMessage, Offer, coordinator_message, explain

log = logging.getLogger(__name__)

# A ping unanswered for this long (or for three heartbeats, whichever is longer) means the link is gone.
PONG_TIMEOUT = 5.0


def control_url(coordinator_url: str, room: str) -> str:
    """The control WebSocket of ``room`` on the coordinator at ``coordinator_url`` (http or https)."""
    parts = urlsplit(coordinator_url.rstrip("/"))
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, f"{parts.path}/api/v1/rooms/{room}/control", "", ""))


def retryable(exc: Exception) -> Exception | None:
    """Network trouble and server errors are retried; a refusal (4xx) is not."""
    if isinstance(exc, InvalidStatus) and exc.response.status_code < 500:
        return exc
    if isinstance(exc, (OSError, TimeoutError, InvalidStatus, ConnectionClosed)):
        return None
    if exc.__class__.__module__.startswith("websockets"):
        return None
    return exc


def refusal_reason(status_code: int, body: bytes | bytearray | None) -> str:
    """The coordinator's own words for a refused request (its JSON error body), or the HTTP status."""
    try:
        return str(json.loads(body or b"")["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status_code}"


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The coordinator's certificate is checked against ``ca_file`` when set, the system's CAs otherwise."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _delays(initial: float, maximum: float) -> Generator[float]:
    return backoff(initial_delay=initial, min_delay=min(0.5, maximum), max_delay=maximum)


def dial(
    url: str,
    token: str,
    user_agent: str,
    initial_delay: float,
    max_delay: float,
    ca_file: Path | None = None,
) -> connect:
    """A reconnecting connection to a control channel (iterate it with ``async for``)."""
    context = tls_context(ca_file) if url.startswith("wss:") else None
    return connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        process_exception=retryable,
        reconnect_delays=partial(_delays, initial_delay, max_delay),
        ssl=context,
        open_timeout=10,
        max_size=1024 * 1024,
        user_agent_header=user_agent,
    )


Session = Callable[[ClientConnection], Awaitable[float]]


async def stay_connected(
    make_dial: Callable[[], connect | None], session: Session, stop: asyncio.Event, retry_pause: float
) -> None:
    """Dial and run sessions until ``stop`` is set.

    ``make_dial`` returns None when it cannot dial yet (no token); ``session``
    returns how long to wait before dialling again. A refused connection is
    logged with the coordinator's reason and tried again after ``retry_pause``.
    """
    stopping = asyncio.create_task(stop.wait(), name="dial-stop")
    try:
        while not stop.is_set():
            opened = asyncio.Event()
            attempt = asyncio.create_task(_attempt(make_dial, session, retry_pause, opened), name="dial")
            await asyncio.wait({attempt, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not attempt.done() and not opened.is_set():
                attempt.cancel()  # still dialling: nothing to close, so stop at once (an open session closes itself)
            pause = 0.0
            with contextlib.suppress(asyncio.CancelledError):
                pause = await attempt
            if pause and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause)
    finally:
        stopping.cancel()


async def _attempt(
    make_dial: Callable[[], connect | None], session: Session, retry_pause: float, opened: asyncio.Event
) -> float:
    """Dial until a connection opens and run its session; returns how long to wait before the next."""
    dialler = make_dial()
    if dialler is None:
        return retry_pause
    try:
        async for websocket in dialler:
            opened.set()
            return await session(websocket)
    except InvalidStatus as exc:
        reason = refusal_reason(exc.response.status_code, exc.response.body)
        log.error("%s refused the connection: %s", dialler.uri, reason)
    return retry_pause


async def send_heartbeats(
    websocket: ClientConnection, heartbeat: Callable[[], BaseModel], interval: Callable[[], float], peer: str
) -> None:
    """A heartbeat every ``interval()``, with one ping in flight; an unanswered ping aborts the connection.

    A cut link thus ends the session within seconds: dialling starts again while the link is down and
    succeeds as soon as it is back, instead of waiting out TCP's retransmission back-off on a dead
    connection (or websockets' own keepalive, 40 s).
    """
    ping: tuple[float, asyncio.Future[float]] | None = None
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(interval())
            await websocket.send(heartbeat().model_dump_json())
            now = time.monotonic()
            if ping is None or ping[1].done():
                ping = (now, asyncio.ensure_future(await websocket.ping()))
            elif now - ping[0] > max(PONG_TIMEOUT, 3 * interval()):
                log.warning("%s does not answer pings; closing the session", peer)
                websocket.transport.abort()
                return


async def send_on(websocket: ClientConnection | None, message: BaseModel) -> bool:
    """Send on a control channel if it is up; False when it is not."""
    if websocket is None:
        return False
    try:
        await websocket.send(message.model_dump_json())
    except ConnectionClosed:
        return False
    return True


Handler = Callable[[ClientConnection, AnyCoordinatorMessage], Awaitable[None]]


async def read_messages(websocket: ClientConnection, handle: Handler, sender: str) -> None:
    """Hand every valid message to ``handle`` until the channel closes; one that does not validate is skipped."""
    with contextlib.suppress(ConnectionClosed):
        async for raw in websocket:
            try:
                message = coordinator_message.validate_json(raw)
            except ValidationError as exc:
                log.warning("ignoring a message the %s sent: %s", sender, explain(exc))
                continue
            await handle(websocket, message)


async def read_until_stopped(
    websocket: ClientConnection, handle: Handler, sender: str, stop: asyncio.Event, reason: str
) -> None:
    """``read_messages`` until the channel closes or ``stop`` is set, then close it with ``reason``: an open
    session would otherwise outlive the stop for as long as the other side keeps the channel up."""
    reader = asyncio.create_task(read_messages(websocket, handle, sender), name=f"read-{sender}")
    stopper = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if reader.done():
            reader.result()  # a handler's error surfaces here, as it did when reading inline
    finally:
        for task in (reader, stopper):
            task.cancel()
        await websocket.close(code=1000, reason=reason if stop.is_set() else "")


class NegotiationFailed(Exception):
    """No media peer this time: ``reason`` for the log; ``refusal`` is the coordinator's own words if it refused."""

    def __init__(self, reason: str, refusal: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refusal = refusal


async def negotiate(
    send: Callable[[BaseModel], Awaitable[bool]], occurrence: int, sdp: str, answer: asyncio.Future[str], wait: float
) -> str:
    """Offer on the control channel and wait for the answer's SDP (the channel's reader resolves ``answer``)."""
    if not await send(Offer(occurrence=occurrence, sdp=sdp)):
        raise NegotiationFailed("control channel down")
    try:
        return await asyncio.wait_for(answer, wait)
    except TimeoutError:
        raise NegotiationFailed(f"no answer within {wait:.0f} s") from None
    except RuntimeError as exc:
        raise NegotiationFailed("offer refused", str(exc)) from None
