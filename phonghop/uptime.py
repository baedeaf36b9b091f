"""`phonghop uptime`: each room's availability over a month, and its outages, from Prometheus.

It reads the recording rule ``room:phonghop_room_available:bool`` (1 while the room is
connected, 0 while it is not, also while the coordinator is down) through Prometheus's
HTTP API, so the report counts exactly what the alerts saw. Times are shown in the
commune's time zone; the report is for the technician, in Vietnamese.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

AVAILABLE = "room:phonghop_room_available:bool"
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
# Prometheus refuses range queries of more than 11 000 points per series.
MAX_POINTS = 10_000


class UptimeError(Exception):
    """Prometheus could not be asked or answered with an error; the message says what to do."""


@dataclass(frozen=True)
class Outage:
    start: datetime
    end: datetime
    ongoing: bool

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass
class RoomUptime:
    room: str
    name: str = ""
    up: int = 0
    samples: int = 0
    outages: list[Outage] = field(default_factory=list)

    @property
    def availability(self) -> float | None:
        return self.up / self.samples if self.samples else None

    @property
    def downtime(self) -> timedelta:
        return sum((o.duration for o in self.outages), timedelta())


def month_bounds(month: str | None, now: datetime) -> tuple[datetime, datetime]:
    """Start and end (not after ``now``) of a month given as YYYY-MM, in the commune's time zone."""
    local_now = now.astimezone(LOCAL)
    if month is None:
        year, number = local_now.year, local_now.month
    else:
        try:
            parsed = datetime.strptime(month, "%Y-%m")
        except ValueError:
            raise UptimeError(f"tháng '{month}' không hợp lệ: hãy viết theo dạng NĂM-THÁNG, ví dụ 2026-11") from None
        year, number = parsed.year, parsed.month
    start = datetime(year, number, 1, tzinfo=LOCAL)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=LOCAL)
    if start >= local_now:
        raise UptimeError(f"tháng {number:02d}/{year} chưa bắt đầu: chọn một tháng đã qua hoặc tháng này")
    return start, min(end, local_now)


def _get(client: httpx.Client, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise UptimeError(
            f"không kết nối được Prometheus tại {client.base_url} ({exc}); kiểm tra địa chỉ (--prometheus) "
            "và dịch vụ prometheus"
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or body.get("status") != "success":
        raise UptimeError(f"Prometheus trả lỗi {response.status_code}: {body.get('error') or response.text[:200]}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def fetch(
    client: httpx.Client, start: datetime, end: datetime, step: timedelta
) -> dict[str, list[tuple[float, float]]]:
    """Samples of every room in [start, end], one per step, asked in chunks Prometheus accepts."""
    series: dict[str, list[tuple[float, float]]] = {}
    chunk = step * MAX_POINTS
    cursor = start
    while cursor <= end:
        chunk_end = min(cursor + chunk, end)
        params = {
            "query": f"max by (room) ({AVAILABLE})",
            "start": f"{cursor.timestamp():.3f}",
            "end": f"{chunk_end.timestamp():.3f}",
            "step": f"{step.total_seconds():g}",
        }
        for item in _get(client, "/api/v1/query_range", params):
            room = str(item["metric"]["room"])
            values = item["values"]
            series.setdefault(room, []).extend((float(ts), float(v)) for ts, v in values)
        cursor = chunk_end + step
    return series


def room_names(client: httpx.Client, end: datetime, days: int) -> dict[str, str]:
    """Vietnamese room names as the coordinator reported them (phonghop_room_info)."""
    query = f"max by (room, name) (last_over_time(phonghop_room_info[{days}d]))"
    found = _get(client, "/api/v1/query", {"query": query, "time": str(end.timestamp())})
    return {str(item["metric"]["room"]): str(item["metric"].get("name", "")) for item in found}


def summarize(room: str, samples: list[tuple[float, float]], step: timedelta) -> RoomUptime:
    """Availability = share of samples with the room up; an outage is a run of samples with it down."""
    result = RoomUptime(room)
    down_since: float | None = None
    for ts, value in samples:
        result.samples += 1
        if value >= 1:
            result.up += 1
            if down_since is not None:
                result.outages.append(Outage(_local(down_since), _local(ts), ongoing=False))
                down_since = None
        elif down_since is None:
            down_since = ts
    if down_since is not None and samples:
        last = samples[-1][0] + step.total_seconds()
        result.outages.append(Outage(_local(down_since), _local(last), ongoing=True))
    return result


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC).astimezone(LOCAL)


def vietnamese_duration(span: timedelta) -> str:
    seconds = round(span.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "ngày"), (hours, "giờ"), (minutes, "phút")) if n]
    if secs or not parts:
        parts.append(f"{secs} giây")
    return " ".join(parts)


def percent(share: float) -> str:
    """Vietnamese style: decimal comma."""
    return f"{share * 100:.2f}%".replace(".", ",")


def render(rooms: list[RoomUptime], start: datetime, end: datetime, step: timedelta) -> str:
    fmt = "%d/%m/%Y %H:%M"
    period = (end - start) / step
    lines = [
        f"BÁO CÁO THỜI GIAN HOẠT ĐỘNG CÁC PHÒNG HỌP — THÁNG {start:%m/%Y}",
        f"Từ {start:{fmt}} đến {end:{fmt}} (giờ Việt Nam)",
        "Hoạt động: tỉ lệ thời gian phòng kết nối được, tính trên phần thời gian có số liệu giám sát.",
        "",
        f"{'Phòng':<18} {'Tên phòng':<34} {'Hoạt động':>10} {'Có số liệu':>11} {'Số lần mất':>11}  "
        "Tổng thời gian mất kết nối",
    ]
    for room in rooms:
        share = "-" if room.availability is None else percent(room.availability)
        coverage = percent(min(1.0, room.samples / period)) if period else "-"
        lines.append(
            f"{room.room:<18} {room.name[:34]:<34} {share:>10} {coverage:>11} {len(room.outages):>11}  "
            f"{vietnamese_duration(room.downtime) if room.outages else '-'}"
        )
    lines += ["", "CÁC LẦN MẤT KẾT NỐI"]
    any_outage = False
    for room in rooms:
        for outage in room.outages:
            any_outage = True
            until = "đến nay (chưa có lại)" if outage.ongoing else f"{outage.end:%d/%m/%Y %H:%M:%S}"
            lines.append(
                f"- {room.room} ({room.name or 'không rõ tên'}): {outage.start:%d/%m/%Y %H:%M:%S} → {until}, "
                f"{vietnamese_duration(outage.duration)}"
            )
    if not any_outage:
        lines.append("Không có lần mất kết nối nào.")
    return "\n".join(lines)


def uptime_report(prometheus: str, month: str | None, step: timedelta, now: datetime | None = None) -> str:
    start, end = month_bounds(month, now or datetime.now(UTC))
    with httpx.Client(base_url=prometheus, timeout=60) as client:
        series = fetch(client, start, end, step)
        names = room_names(client, end, (end - start).days + 1)
    rooms = [summarize(room, samples, step) for room, samples in sorted(series.items())]
    for room in rooms:
        room.name = names.get(room.room, "")
    if not rooms:
        raise UptimeError(
            f"Prometheus chưa có số liệu {AVAILABLE} trong tháng {start:%m/%Y}: kiểm tra rằng luật ghi "
            "(rules/phonghop.rules.yml) đã được nạp và máy chủ điều phối được thu thập số liệu"
        )
    return render(rooms, start, end, step)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus URL")
    parser.add_argument("--month", help="month as YYYY-MM (default: this month)")
    parser.add_argument("--step", type=float, default=60.0, help="sample spacing in seconds (default 60)")


def run(args: argparse.Namespace) -> int:
    if args.step <= 0:
        print("--step phải lớn hơn 0 (số giây giữa hai mẫu, ví dụ 60)", file=sys.stderr)
        return 2
    try:
        print(uptime_report(args.prometheus, args.month, timedelta(seconds=args.step)))
    except UptimeError as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 1
    return 0
