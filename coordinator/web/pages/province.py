"""The province page (/cac-xa): every commune's link and rooms, from the province's Prometheus."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from coordinator.province_view import PrometheusUnavailable, ProvinceView
from coordinator.services import Svc
from coordinator.web.security import Refused, Viewer
from coordinator.web.templating import ago, render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

# A commune's report older than this is shown as stale: its Prometheus writes every few seconds.
STALE_SECONDS = 60


@router.get("/cac-xa", response_class=HTMLResponse)
async def province_page(request: Request, services: Svc, user: Viewer, fragment: bool = False) -> HTMLResponse:
    url = services.settings.prometheus_url
    if not url:
        raise Refused(
            "Trang các xã chỉ có ở máy chủ tỉnh: đặt PHONGHOP_PROMETHEUS_URL (Prometheus nhận số liệu của các xã).",
            status=404,
        )
    now = datetime.now(UTC)
    try:
        communes, problem = await ProvinceView(url).communes(), None
    except PrometheusUnavailable as exc:
        log.warning("province page: %s", exc)
        communes, problem = [], str(exc)
    return render(
        request,
        "_province_live.html" if fragment else "province.html",
        user,
        status_code=503 if problem else 200,
        communes=communes,
        problem=problem,
        linked=sum(1 for c in communes if c.linked),
        stale=lambda value: value is None or (now - value).total_seconds() > STALE_SECONDS,
        ago=lambda value: ago(value, now),
    )
