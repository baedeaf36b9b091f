"""Monitoring batches on their way to the province's Prometheus (see coordinator.series_relay).

Two hops: a commune's own Prometheus posts to ``/local/province-series`` on the coordinator's loopback
(outside ``/api``: Prometheus sends no credential there, and nginx refuses the path from outside), and
the commune's coordinator posts to the province's ``/api/v1/rooms/{commune}/series`` with its token.
Every commune's Prometheus writes here, so that joining a province changes nothing in the commune's
monitoring; a commune in no province answers that it took the batch and keeps nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from coordinator.auth import RoomItself
from coordinator.errors import ApiError
from coordinator.series_relay import SeriesForwarder
from coordinator.services import Svc

router = APIRouter(tags=["province"])

LOOPBACK = {"127.0.0.1", "::1"}


async def _pass_on(forwarder: SeriesForwarder, request: Request) -> Response:
    outcome = await forwarder.forward(await request.body(), request.headers)
    return Response(content=outcome.body, status_code=outcome.status, media_type="text/plain")


@router.post("/local/province-series", include_in_schema=False)
async def from_local_prometheus(request: Request, services: Svc) -> Response:
    """The commune's Prometheus, on this server, writing its series towards the province."""
    client = request.client.host if request.client else ""
    if client not in LOOPBACK or "x-forwarded-for" in request.headers:
        raise ApiError(403, "not_local", "only the Prometheus on this server writes here")
    if services.province_series is None:  # a commune on its own: its series stay in its own Prometheus
        return Response(status_code=204)
    return await _pass_on(services.province_series, request)


@router.post("/api/v1/rooms/{room_id}/series", dependencies=[RoomItself], include_in_schema=False)
async def from_commune(room_id: str, request: Request, services: Svc) -> Response:
    """A commune's series, passed on by its coordinator, for this province's Prometheus."""
    if services.registry.rooms[room_id].group != "commune":
        raise ApiError(403, "not_commune", f"{room_id} is a room, not a commune: only communes send their series")
    if services.prometheus_series is None:
        raise ApiError(
            503,
            "no_prometheus",
            "this coordinator has no Prometheus to take the communes' series (PHONGHOP_PROMETHEUS_URL)",
        )
    return await _pass_on(services.prometheus_series, request)
