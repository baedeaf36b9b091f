"""The agent's local API, on 127.0.0.1 only: status for the technician, the room's raised hand."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from node_agent.control import ControlClient
from phonghop.protocol import GiveFloor, Hand


class FloorBody(BaseModel):
    room: str | None


def build_app(control: ControlClient) -> FastAPI:
    app = FastAPI(title="phonghop agent (local)", docs_url=None, redoc_url=None)

    @app.get("/status")
    async def status() -> dict[str, Any]:
        media = control.media.status().model_dump() if control.media is not None else None
        return {**control.room.status(), "media": media}

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


def local_server(control: ControlClient, port: int) -> tuple[_Server, Callable[[], None]]:
    server = _Server(uvicorn.Config(build_app(control), host="127.0.0.1", port=port, log_config=None, access_log=False))

    def stop() -> None:
        server.should_exit = True

    return server, stop
