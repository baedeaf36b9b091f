"""Every commune of a province at a glance, read from the province's Prometheus.

The province learns about its communes only through their uplinks and their
monitoring: the province coordinator knows each commune as a participant of
group ``commune`` (scraped by the province's own Prometheus), and each
commune's Prometheus writes its rooms' series to the province's, labelled with
its ``commune``. The page joins the two, so it also shows a commune's last
report while that commune's link is down.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

# Province side: communes as participants. Commune side: their rooms (a commune's series never have
# group "commune"; that group exists only at the province).
QUERIES = {
    "name": 'max by (room, name) (phonghop_room_info{group="commune"})',
    "linked": 'max by (room) (phonghop_room_up{group="commune"})',
    "picture_held": "max by (room) (phonghop_program_picture_held)",
    "online": 'sum by (commune) (phonghop_room_up{group!="commune"})',
    "total": 'count by (commune) (phonghop_room_up{group!="commune"})',
    "in_meeting": "count by (commune) (phonghop_room_in_meeting == 1)",
    "media_live": "max by (commune) (phonghop_uplink_media_live)",
    "reported": 'max by (commune) (timestamp(phonghop_room_up{group!="commune"}))',
}


class PrometheusUnavailable(Exception):
    """The province's Prometheus did not answer, or answered with an error; the message says which."""


@dataclass(frozen=True)
class CommuneRow:
    """One commune; None where neither side has said anything yet."""

    id: str
    name: str
    linked: bool | None  # the commune's control channel to the province is open
    media_live: bool | None  # the commune receives the province meeting's media
    picture_held: bool | None  # the province holds its picture back: over the commune's budget
    rooms_online: int | None
    rooms_total: int | None
    rooms_in_meeting: int | None
    reported_at: datetime | None  # the newest sample the commune's Prometheus wrote here


class ProvinceView:
    def __init__(self, prometheus_url: str, timeout: float = 5.0) -> None:
        self.prometheus_url = prometheus_url.rstrip("/")
        self.timeout = timeout

    async def communes(self) -> list[CommuneRow]:
        async with httpx.AsyncClient(base_url=self.prometheus_url, timeout=self.timeout) as client:
            answers = await asyncio.gather(*(self._query(client, promql) for promql in QUERIES.values()))
        values = dict(zip(QUERIES, answers, strict=True))
        names = {labels["room"]: labels.get("name", "") for labels, _ in values["name"]}
        by_participant = ("name", "linked", "picture_held")  # the province's own scrape: the commune is a room
        linked, held = _by(values["linked"], "room"), _by(values["picture_held"], "room")
        per_commune = {key: _by(values[key], "commune") for key in QUERIES if key not in by_participant}
        ids = sorted(names.keys() | linked.keys())
        rows = []
        for commune in ids:
            reported = per_commune["reported"].get(commune)
            total = per_commune["total"].get(commune)
            rows.append(
                CommuneRow(
                    id=commune,
                    name=names.get(commune) or commune,
                    linked=_flag(linked.get(commune)),
                    media_live=_flag(per_commune["media_live"].get(commune)),
                    picture_held=_flag(held.get(commune)),
                    rooms_online=_count(per_commune["online"].get(commune)),
                    rooms_total=_count(total),
                    # No room in a meeting leaves no series; with rooms reported that is a count of 0.
                    rooms_in_meeting=_count(per_commune["in_meeting"].get(commune, 0.0 if total else None)),
                    reported_at=datetime.fromtimestamp(reported, UTC) if reported is not None else None,
                )
            )
        return rows

    async def _query(self, client: httpx.AsyncClient, promql: str) -> list[tuple[dict[str, str], float]]:
        try:
            response = await client.get("/api/v1/query", params={"query": promql})
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(f"không kết nối được tới {self.prometheus_url} ({exc!r})") from exc
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise PrometheusUnavailable(
                f"{self.prometheus_url} trả lời HTTP {response.status_code}, không phải Prometheus"
            ) from exc
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusUnavailable(f"{self.prometheus_url} báo lỗi: {body.get('error', response.status_code)}")
        return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]


def _by(result: list[tuple[dict[str, str], float]], label: str) -> dict[str, float]:
    return {labels[label]: value for labels, value in result if label in labels}


def _flag(value: float | None) -> bool | None:
    return None if value is None else value >= 1


def _count(value: float | None) -> int | None:
    return None if value is None else int(value)
