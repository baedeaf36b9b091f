"""What every HTTP request meets first: a body size limit, a credential before any API body, safe headers.

Pure ASGI, in front of everything else (sessions, routing, FastAPI's body
parsing), so a refused request costs no parsing:

- A body over its limit is refused with 413: at once when Content-Length says
  so, else as soon as the bytes counted pass the limit (chunked uploads).
- An API request that changes something and carries no ``Authorization``
  header is refused with 401 before its body is read (FastAPI reads the body
  before it runs the route's dependencies).
- Every response says ``nosniff`` and a strict Referrer-Policy; pages get a
  Content-Security-Policy that allows only this site's own scripts, styles and
  pictures and no framing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from coordinator.errors import error_body
from coordinator.series_relay import MAX_BATCH_BYTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024  # forms, JSON and SDP offers (a room's offer is about 5 KB)
# The TV picture upload carries up to 1 MB (coordinator.screens.MAX_SCREEN_BYTES) and gets its own limit.
# Prometheus's remote-write batches on their way to the province (coordinator.series_relay).
LARGE_BODIES = (
    (re.compile(r"^/api/v1/rooms/[^/]+/screen$"), 1_100_000),
    (re.compile(r"^(/local/province-series|/api/v1/rooms/[^/]+/series)$"), MAX_BATCH_BYTES),
)
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
# FastAPI's /docs and /redoc load their scripts and styles from a CDN.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src blob:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def body_limit(path: str) -> int:
    for pattern, limit in LARGE_BODIES:
        if pattern.match(path):
            return limit
    return MAX_BODY_BYTES


def too_large(limit: int) -> str:
    return f"the request body is over the limit of {limit} bytes; send less (a form or JSON body fits in a few KB)"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit))


async def _json(send: Send, status: int, body: dict[str, object], headers: list[tuple[bytes, bytes]]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
                *COMMON_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class HttpGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope["headers"])
        limit = body_limit(path)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _json(send, 413, error_body("body_too_large", too_large(limit)), [(b"connection", b"close")])
            return
        if path.startswith("/api/") and scope["method"] in CHANGES and b"authorization" not in headers:
            await _json(
                send,
                401,
                error_body(
                    "credential_required",
                    "this request needs a credential: send 'Authorization: Bearer <token>' "
                    "(the operator token, or the room's own token for a room's endpoints)",
                ),
                [(b"www-authenticate", b"Bearer")],
            )
            return

        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        csp = (DOCS_CSP if path in ("/docs", "/redoc") else PAGE_CSP).encode()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(COMMON_HEADERS)
                names = {name.lower() for name, _ in message.get("headers", [])}
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    extra.append((b"content-security-policy", csp))
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in names)]
            await send(message)

        await self.app(scope, counted, with_headers)
