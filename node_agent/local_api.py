"""The agent's local API, on 127.0.0.1 only: health, status and the TV picture for the technician
on site, the room's raised hand, the chair's floor control, and (only when the config allows) test hooks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from phonghop.protocol import GiveFloor, Hand

if TYPE_CHECKING:
    from node_agent.agent import Agent


class FloorBody(BaseModel):
    room: str | None


def build_app(agent: Agent) -> FastAPI:
    app = FastAPI(title="phonghop agent (local)", docs_url=None, redoc_url=None)
    control = agent.control

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """The agent's loop answers (a hung loop answers nothing)."""
        return {"ok": True, "room": control.room.room_id, "connected": control.room.connected}

    @app.get("/status")
    async def status() -> dict[str, Any]:
        media = control.media.status().model_dump() if control.media is not None else None
        devices = {name: {"ok": ok, "problem": problem} for name, (ok, problem) in control.device_states().items()}
        return {**control.room.status(), "media": media, "devices": devices}

    @app.get("/screen.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def screen() -> Response:
        """What the TV shows now."""
        from node_agent.tv import Television

        if not isinstance(agent.tv, Television):
            return JSONResponse({"error": "phòng này không bật màn hình TV ([display] enabled = false)"}, 404)
        return Response(agent.tv.to_png(), media_type="image/png", headers={"Cache-Control": "no-store"})

    if agent.config.debug.allow_hang:

        @app.post("/debug/hang")
        async def hang() -> None:
            """Block the event loop for good: the systemd watchdog must notice and restart the agent."""
            while True:
                time.sleep(3600)  # noqa: ASYNC251 - blocking the loop is the point

    if agent.config.debug.allow_device_faults:

        @app.post("/debug/devices/{name}/{action}")
        async def device_fault(name: str, action: str) -> JSONResponse:
            """Unplug (action "fail") or plug back ("restore") a test-source device."""
            if agent.source is None or name not in ("camera", "microphone") or action not in ("fail", "restore"):
                return JSONResponse({"error": "dùng /debug/devices/{camera|microphone}/{fail|restore}"}, 400)
            if action == "fail":
                agent.source.faults.broken.add(name)
            else:
                agent.source.faults.broken.discard(name)
            return JSONResponse({"device": name, "broken": name in agent.source.faults.broken})

    async def _hand(raised: bool) -> JSONResponse:
        if control.room.meeting is None:
            return JSONResponse({"error": "phòng đang không họp: chỉ giơ tay được khi đang họp"}, status_code=409)
        if not await control.send(Hand(raised=raised)):
            return JSONResponse({"error": "mất kết nối tới máy chủ điều phối; thử lại sau"}, status_code=503)
        control.room.hand_raised = raised
        return JSONResponse({"hand_raised": raised})

    @app.put("/floor")
    async def give_floor(body: FloorBody) -> JSONResponse:
        """For the chair room: give the floor to a room (null takes it back)."""
        if control.room.meeting is None or control.room.meeting.chair != control.room.room_id:
            return JSONResponse({"error": "chỉ phòng chủ trì mới trao quyền phát biểu"}, status_code=409)
        if not await control.send(GiveFloor(room=body.room)):
            return JSONResponse({"error": "mất kết nối tới máy chủ điều phối; thử lại sau"}, status_code=503)
        return JSONResponse({"requested": body.room})

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


def local_server(agent: Agent, port: int) -> tuple[_Server, Callable[[], None]]:
    server = _Server(uvicorn.Config(build_app(agent), host="127.0.0.1", port=port, log_config=None, access_log=False))

    def stop() -> None:
        server.should_exit = True

    return server, stop
