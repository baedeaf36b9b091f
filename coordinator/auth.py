"""Who may do what: the operator's bearer token guards every state change."""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coordinator.errors import ApiError
from coordinator.tokens import new_token

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="operator token (from the operator token file)")


def load_operator_token(path: Path) -> str:
    """Read the operator token, creating the file (mode 0600) with a fresh one if it is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_token() + "\n")
        log.warning("created a new operator token in %s", path)
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise SystemExit(f"operator token in {path} is shorter than 16 characters; put a long random token there")
    return token


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
