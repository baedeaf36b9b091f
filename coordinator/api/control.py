"""The agents' control channel: one authenticated WebSocket per room.

Refusals happen before the upgrade, as an HTTP response with a JSON reason,
so the agent can log why. After that, a bad message gets an ``error`` reply
and the connection stays: one room's mistake never disturbs another room.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from coordinator.auth import room_refusal
from coordinator.connections import Connection
from coordinator.errors import error_body
from coordinator.services import Services
from phonghop.protocol import CLOSE_RESTART, AnyAgentMessage, Error, Welcome, agent_message, explain

log = logging.getLogger(__name__)
CLOSE_POLICY = 1008  # WebSocket "policy violation"
router = APIRouter(tags=["control"])


def _bearer(websocket: WebSocket) -> str | None:
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@router.websocket("/api/v1/rooms/{room_id}/control")
async def control_channel(websocket: WebSocket, room_id: str) -> None:
    services: Services = websocket.app.state.services
    refusal = room_refusal(services.registry, room_id, _bearer(websocket))
    if refusal is not None:
        status, reason, message = refusal
        services.control_metrics.rejected.labels(reason).inc()
        peer = websocket.client.host if websocket.client else "?"
        log.warning("control connection for room %s from %s refused: %s", room_id, peer, message)
        await websocket.send_denial_response(JSONResponse(error_body(reason, message), status_code=status))
        return

    await websocket.accept()
    if websocket.query_params.get("probe") == "1":
        # The self-test's look at the control channel: authenticated and answered, but not attached,
        # so that it never replaces the room's running agent.
        await websocket.send_text(
            Welcome(room=room_id, heartbeat_interval=services.settings.heartbeat_interval).model_dump_json()
        )
        await websocket.close(code=1000, reason="probe done")
        return
    conn = Connection(room_id, websocket)
    await services.connections.attach(conn)
    reason = "connection closed"
    try:
        reason = await serve_messages(
            conn,
            services,
            services.dispatch.handle,
            lambda label: services.control_metrics.errors.labels(room_id, label).inc(),
        )
    finally:
        await services.connections.detach(conn, reason)


MessageHandler = Callable[[Connection, AnyAgentMessage], Awaitable[Error | None]]


async def serve_messages(
    conn: Connection, services: Services, handle: MessageHandler, count_error: Callable[[str], None]
) -> str:
    """Read a participant's control messages until the channel ends; returns why it ended.

    A room's agent and a guest's page speak the same protocol: each message is
    checked, a bad one answered with ``error`` (and counted), a good one handed
    to ``handle``; too many at once close the channel.
    """
    who = conn.room_id
    websocket = conn.websocket
    limit = services.settings.max_message_bytes
    settings = services.settings
    try:
        while True:
            event = await websocket.receive()
            if event["type"] == "websocket.disconnect":
                code = event.get("code")
                # 1012 is the server's own "service restart", sent to every socket as it stops.
                return "coordinator stopped" if code == CLOSE_RESTART else f"agent disconnected (code {code})"
            if services.control_limits.take(who) > 0:
                count_error("rate_limited")
                log.warning(
                    "%s: over %d control messages at once or %.0f a second; closing its channel",
                    who,
                    settings.control_message_burst,
                    settings.control_messages_per_second,
                )
                await conn.close(
                    CLOSE_POLICY,
                    f"rate limit: over {settings.control_messages_per_second:g} messages/s; slow down and reconnect",
                )
                return "rate limited"
            text = event.get("text")
            problem: tuple[str, str] | None = None
            if text is None:
                problem = ("binary", "binary frames are not part of the protocol; send JSON text")
            elif len(text.encode("utf-8")) > limit:
                problem = (
                    "too_large",
                    f"message of {len(text.encode('utf-8'))} bytes exceeds the {limit}-byte limit",
                )
            else:
                try:
                    parsed = agent_message.validate_json(text)
                except ValidationError as exc:
                    problem = ("invalid", explain(exc))
                else:
                    complaint = await handle(conn, parsed)
                    if complaint is not None:
                        problem = (complaint.code, complaint.message)
            if problem is not None:
                label, explanation = problem
                count_error(label)
                log.warning("%s: bad control message (%s): %s", who, label, explanation)
                await conn.send(Error(code=label, message=explanation))
    except Exception as exc:
        log.info("%s: control channel error: %r", who, exc)
        return f"connection error: {exc.__class__.__name__}"
