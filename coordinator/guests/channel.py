"""A guest's control channel: the page's WebSocket, opened with the session cookie its invitation set.

A browser cannot put a header on a WebSocket, and a secret in a URL ends up in
access logs; the signed session cookie goes along by itself. The Origin must be
this site, so that another site's page cannot open a channel with the guest's
cookie. After that the page speaks the rooms' protocol, minus what only rooms
may do: its offer and answer, its hand, and what it is told (join, floor,
what to send).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket

from coordinator.api.control import serve_messages
from coordinator.connections import Connection
from coordinator.participants import (
    CLOSE_FOREIGN_ORIGIN,
    CLOSE_GUEST_REMOVED,
    CLOSE_MEETING_ENDED,
    CLOSE_NO_INVITATION,
    CLOSE_NOT_STARTED,
    guest_id,
)
from coordinator.services import Services
from phonghop.protocol import AnyAgentMessage, Error, GiveFloor, Hand, Offer

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
SESSION_GUEST = "guest"  # the session key holding the invitation's id, set when the guest entered
REFUSALS = {
    "revoked": (CLOSE_GUEST_REMOVED, "invitation revoked"),
    "expired": (CLOSE_MEETING_ENDED, "invitation expired: its meeting ended"),
    "waiting": (CLOSE_NOT_STARTED, "the meeting has not started yet"),
}


def same_origin(websocket: WebSocket) -> bool:
    """The page that opens the channel is this site's (by host name: nginx passes the Host without its port)."""
    origin, host = websocket.headers.get("origin"), websocket.headers.get("host")
    return origin is not None and host is not None and urlsplit(origin).hostname == urlsplit(f"//{host}").hostname


def session_invitation(session: dict[str, object]) -> int | None:
    value = session.get(SESSION_GUEST)
    return value if isinstance(value, int) else None


async def handle_guest(services: Services, conn: Connection, message: AnyAgentMessage) -> Error | None:
    if isinstance(message, Offer):
        return await services.live.offer(conn.room_id, message)
    if isinstance(message, Hand):
        if message.room is not None:
            return Error(code="not_commune", message="a guest raises its own hand only; leave out 'room'")
        return services.live.hand(conn.room_id, message.raised)
    if isinstance(message, GiveFloor):
        return Error(code="not_chair", message="only the chair room or the operator gives the floor")
    return None  # hello, heartbeat, ack, media status: nothing to do for a page


@router.websocket("/khach/kenh")
async def guest_channel(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    peer = websocket.client.host if websocket.client else "?"
    await websocket.accept()
    if not same_origin(websocket):
        log.warning("guest channel from %s refused: Origin %r is not this site", peer, websocket.headers.get("origin"))
        await websocket.close(CLOSE_FOREIGN_ORIGIN, "open the channel from this site's guest page")
        return
    number = session_invitation(websocket.session)
    invitation = await services.guests.get(number) if number is not None else None
    if invitation is None:
        await websocket.close(CLOSE_NO_INVITATION, "no invitation in this session: open the invitation link again")
        return
    standing, active = await services.guests.standing(invitation, services.live)
    if active is None:
        code, reason = REFUSALS[standing]
        log.info("guest %s from %s not let in: %s", guest_id(invitation.id), peer, reason)
        await websocket.close(code, reason)
        return
    conn = Connection(guest_id(invitation.id), websocket)
    await services.live.guest_arrived(active, conn, invitation.guest_name)
    reason = "connection closed"
    try:
        reason = await serve_messages(
            conn,
            services,
            lambda conn, message: handle_guest(services, conn, message),
            lambda label: services.control_metrics.guest_errors.labels(label).inc(),
        )
    finally:
        await services.live.guest_left(conn.room_id, reason, conn)
