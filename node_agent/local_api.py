"""The agent's local API, on 127.0.0.1 only: health, status and the TV picture for the technician
on site, the room's raised hand, the chair's floor control, and (only when the config allows) test hooks.

Every request must name a loopback Host (else 421) and, except ``GET /healthz``,
carry the agent's secret (else 403); see ``local_auth`` for why. ``/healthz``
stays open so that a liveness probe needs no file access: it tells only that
the loop answers, the room id and whether it is connected, and the Host check
keeps web pages from reading even that.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from node_agent.config import Debug
from node_agent.local_auth import bearer_matches, is_loopback_host
from node_agent.room import Outcome


class RoomAgent(Protocol):
    """What the local API needs of the running agent."""

    @property
    def room_id(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    def status(self) -> dict[str, Any]:
        """The room, its meeting, media and devices as JSON (GET /status)."""
        ...

    def screen_png(self) -> bytes | None:
        """What the TV shows now; None when the room has no TV."""
        ...

    async def set_hand(self, raised: bool) -> Outcome: ...

    async def give_floor(self, room: str | None) -> Outcome: ...

    def set_device_fault(self, device: str, broken: bool) -> bool:
        """Unplug (or plug back) a test-source device; False when the device is not from the test source."""
        ...


class FloorBody(BaseModel):
    room: str | None


REFUSALS: dict[Outcome, tuple[int, str]] = {
    "not_in_meeting": (409, "phòng đang không họp: chỉ giơ tay được khi đang họp"),
    "not_chair": (409, "chỉ phòng chủ trì mới trao quyền phát biểu"),
    "offline": (503, "mất kết nối tới máy chủ điều phối; thử lại sau"),
}


def _refused(outcome: Outcome) -> JSONResponse:
    status, message = REFUSALS[outcome]
    return JSONResponse({"error": message}, status_code=status)


OPEN_PATHS = frozenset({"/healthz"})


class LocalOnly:
    """Refuses what does not come from a local tool: a foreign Host (421), no or a wrong secret (403)."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        refusal: JSONResponse | None = None
        if not is_loopback_host(host):
            refusal = JSONResponse(
                {"error": f"Host {host!r} is not this machine: call http://127.0.0.1:<local_api_port>/"},
                status_code=421,
            )
        elif scope["path"] not in OPEN_PATHS and not bearer_matches(headers.get("authorization", ""), self.secret):
            refusal = JSONResponse(
                {
                    "error": "the local API needs the agent's secret: send 'Authorization: Bearer <secret>' "
                    "with the secret read from local_api_secret_file (as the agent's user or root)"
                },
                status_code=403,
            )
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_app(agent: RoomAgent, debug: Debug, secret: str) -> FastAPI:
    app = FastAPI(title="phonghop agent (local)", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(LocalOnly, secret=secret)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """The agent's loop answers (a hung loop answers nothing)."""
        return {"ok": True, "room": agent.room_id, "connected": agent.connected}

    @app.get("/status")
    async def status() -> dict[str, Any]:
        return agent.status()

    @app.get("/screen.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def screen() -> Response:
        """What the TV shows now."""
        png = agent.screen_png()
        if png is None:
            return JSONResponse({"error": "phòng này không bật màn hình TV ([display] enabled = false)"}, 404)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    if debug.allow_hang:

        @app.post("/debug/hang")
        async def hang() -> None:
            """Block the event loop for good: the systemd watchdog must notice and restart the agent."""
            while True:
                time.sleep(3600)  # noqa: ASYNC251 - blocking the loop is the point

    if debug.allow_device_faults:

        @app.post("/debug/devices/{name}/{action}")
        async def device_fault(name: str, action: str) -> JSONResponse:
            """Unplug (action "fail") or plug back ("restore") a test-source device."""
            if name not in ("camera", "microphone") or action not in ("fail", "restore"):
                return JSONResponse({"error": "dùng /debug/devices/{camera|microphone}/{fail|restore}"}, 400)
            if not agent.set_device_fault(name, action == "fail"):
                return JSONResponse({"error": f"{name} của phòng này không phải nguồn thử"}, 400)
            return JSONResponse({"device": name, "broken": action == "fail"})

    async def _hand(raised: bool) -> JSONResponse:
        outcome = await agent.set_hand(raised)
        return JSONResponse({"hand_raised": raised}) if outcome == "sent" else _refused(outcome)

    @app.put("/floor")
    async def give_floor(body: FloorBody) -> JSONResponse:
        """For the chair room: give the floor to a room (null takes it back)."""
        outcome = await agent.give_floor(body.room)
        return JSONResponse({"requested": body.room}) if outcome == "sent" else _refused(outcome)

    @app.post("/hand")
    async def raise_hand() -> JSONResponse:
        return await _hand(True)

    @app.delete("/hand")
    async def lower_hand() -> JSONResponse:
        return await _hand(False)

    return app


class _Server(uvicorn.Server):
    """Runs inside the agent's loop; the agent handles signals itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def local_server(agent: RoomAgent, debug: Debug, port: int, secret: str) -> tuple[_Server, Callable[[], None]]:
    server = _Server(
        uvicorn.Config(
            build_app(agent, debug, secret),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
    )

    def stop() -> None:
        server.should_exit = True

    return server, stop
