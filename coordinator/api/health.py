"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from coordinator.services import Svc

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: Svc) -> JSONResponse:
    try:
        async with services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse(
            {"status": "not ready", "reason": f"database unreachable: {exc.__class__.__name__}"},
            status_code=503,
        )
    return JSONResponse(
        {
            "status": "ready",
            "rooms": len(services.registry.rooms),
            "meetings_running": len(services.live.meetings),
        }
    )


@router.get("/metrics", response_class=Response)
async def metrics(services: Svc) -> Response:
    return Response(generate_latest(services.collectors), media_type=CONTENT_TYPE_LATEST)
