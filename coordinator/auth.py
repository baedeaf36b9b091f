"""Who may do what: the operator's bearer token guards every state change; a room's token lets it act as itself.

Reads need a credential too: the operator token, or the read-only token (for district or province staff),
each in its own file in the data folder. The calendar feed has its own secret URL instead (calendar apps
cannot send a header); the operator can rotate it.
"""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coordinator.errors import ApiError
from coordinator.registry import Registry
from coordinator.tokens import new_token

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="operator token (from the operator token file)")


def load_operator_token(path: Path, what: str = "operator token") -> str:
    """Read a token file, creating it (mode 0600) with a fresh token if it is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_token() + "\n")
        log.warning("created a new %s in %s", what, path)
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise SystemExit(f"{what} in {path} is shorter than 16 characters; put a long random token there")
    return token


def rotate_token_file(path: Path) -> str:
    """A fresh token in the file (mode 0600), replacing the old one at once."""
    token = new_token()
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    temporary.replace(path)
    return token


def _matches(sent: str, expected: str) -> bool:
    return hmac.compare_digest(sent.encode(), expected.encode())


def is_reader(request: Request, token: str | None) -> bool:
    """The operator token or the read-only token."""
    if token is None:
        return False
    return _matches(token, request.app.state.operator_token) or _matches(token, request.app.state.read_token)


def bearer_of(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None:
        raise ApiError(
            401,
            "credential_required",
            "reading needs a credential: send 'Authorization: Bearer <token>' with the operator token or the "
            "read-only token (the read.token file in the coordinator's data folder)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not is_reader(request, credentials.credentials):
        raise ApiError(403, "credential_rejected", "this token is neither the operator token nor the read-only token")


def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected: str = request.app.state.operator_token
    if credentials is None:
        raise ApiError(
            401,
            "operator_required",
            "this action needs the operator credential: send 'Authorization: Bearer <operator token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise ApiError(
            403,
            "operator_rejected",
            "the operator token is wrong; use the one in the operator token file",
        )


Operator = Depends(require_operator)
Reader = Depends(require_reader)


def room_refusal(registry: Registry, room_id: str, token: str | None) -> tuple[int, str, str] | None:
    """(status, reason label, message) when a request claiming to be ``room_id`` must be refused."""
    if token is None:
        return 401, "missing_token", "send the room token as 'Authorization: Bearer <token>'"
    if registry.authenticate(room_id, token):
        return None
    owner = registry.owner_of(token)
    if owner is not None:
        return (
            403,
            "wrong_room",
            f"this token belongs to room {owner}, not {room_id}: a room can only act as itself",
        )
    if room_id not in registry.rooms:
        return (
            404,
            "unknown_room",
            f"room {room_id!r} is not enrolled; enroll it on the coordinator first",
        )
    return (
        401,
        "bad_token",
        f"the token for room {room_id} is not valid; re-issue it (POST /api/v1/rooms/{room_id}/token) "
        "and put it in the agent's token file",
    )


def require_room(
    room_id: str,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Only the room itself, with its own token, may call a room's endpoint."""
    registry: Registry = request.app.state.services.registry
    refusal = room_refusal(registry, room_id, credentials.credentials if credentials else None)
    if refusal is not None:
        status, reason, message = refusal
        raise ApiError(status, reason, message, headers={"WWW-Authenticate": "Bearer"})


RoomItself = Depends(require_room)
