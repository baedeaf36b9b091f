"""The room's TV: an SDL2 window (full screen on the HDMI TV) composed by the agent.

Between meetings it shows the idle screen (room name, clock, next meeting,
connection state); during a meeting the program picture large, who is on it,
a card for the chair when the floor is elsewhere, and a status line in
Vietnamese. The last composed frame is kept as a PNG for the local API and
uploaded as a thumbnail to the coordinator ("what the TV shows now").

Works on X11 (or Wayland) and headless with ``SDL_VIDEODRIVER=dummy``: the
picture is composed on an off-screen surface either way, so a missing TV
never stops the composing (the display is then reported as not working and
opened again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from node_agent.config import AgentConfig
from node_agent.link import tls
from node_agent.render import ACCENT, ALERT, BACKGROUND, GOOD, MUTED, PANEL, TEXT, draw_text, font, pygame
from node_agent.room import Room

log = logging.getLogger(__name__)

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
INFO_REFRESH = 60.0


def vietnamese_date(when: datetime) -> str:
    return f"{WEEKDAYS[when.weekday()]}, {when:%d/%m/%Y}"


def probe_display() -> tuple[bool, str]:
    """Can SDL open a window here? (For the self-test when no agent is running.)"""
    try:
        pygame.display.init()
        pygame.display.set_mode((64, 64))
        driver = pygame.display.get_driver()
        pygame.display.quit()
    except pygame.error as exc:
        return False, f"không mở được màn hình ({exc}); DISPLAY={os.environ.get('DISPLAY', '')!r}"
    return True, f"mở được màn hình (SDL {driver})"


def meeting_status(room: Room) -> str:
    """The status line under a meeting: what the room should know at a glance."""
    meeting = room.meeting
    assert meeting is not None
    if not room.connected:
        return "● Mất kết nối máy chủ — đang kết nối lại"
    status = f"● Đang họp: {meeting.title}"
    if meeting.recording:
        status += " · Đang ghi hình"
    if room.weak_link is not None:
        status += " · Mạng yếu"
    if room.hand_raised:
        status += " · Đã giơ tay, chờ chủ trì mời"
    if room.floor == room.room_id:
        status += " · PHÒNG ĐANG ĐƯỢC PHÁT BIỂU"
    return status


class Television:
    def __init__(self, config: AgentConfig, room: Room, on_change: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.room = room
        self._on_change = on_change
        cfg = config.display
        self.size = (cfg.width, cfg.height)
        self.canvas = pygame.Surface(self.size)
        self._window: pygame.Surface | None = None
        self.problem: str | None = "not opened yet"
        self._retry_at = 0.0
        self.program: Any = None  # the latest decoded program frame (av.VideoFrame)
        self.program_at = 0.0
        self.info: dict[str, Any] = {}
        self.device_problems: dict[str, str] = {}
        self.png: bytes | None = None
        self._uploaded_digest = b""
        self._uploaded_at = 0.0
        self.frames = 0

    @property
    def ok(self) -> bool:
        return self._window is not None

    # --- inputs -------------------------------------------------------------------

    def on_video(self, slot: str, frame: Any) -> None:
        if slot == "program":
            self.program = frame
            self.program_at = time.monotonic()

    def name_of(self, room_id: str | None) -> str:
        if room_id is None:
            return ""
        names: dict[str, str] = self.info.get("names") or {}
        return names.get(room_id, room_id)

    # --- the window ---------------------------------------------------------------

    def _open(self) -> None:
        try:
            pygame.display.init()
            flags = pygame.FULLSCREEN if self.config.display.fullscreen else 0
            self._window = pygame.display.set_mode(self.size, flags)
            pygame.display.set_caption(f"Phòng họp trực tuyến — {self.config.display_name}")
            pygame.mouse.set_visible(False)
        except pygame.error as exc:
            self._window = None
            self._retry_at = time.monotonic() + self.config.devices.retry_seconds
            if str(exc) != self.problem:
                log.warning("display: cannot open the TV window (%s); retrying", exc)
                self.problem = str(exc)
                self._on_change()
            return
        self.problem = None
        log.info("display: TV window open (%dx%d, SDL driver %s)", *self.size, pygame.display.get_driver())
        self._on_change()

    def _show(self) -> None:
        if self._window is None:
            if time.monotonic() >= self._retry_at:
                self._open()
            if self._window is None:
                return
        try:
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    log.info("display: window close ignored (the TV stays on)")
            self._window.blit(self.canvas, (0, 0))
            pygame.display.flip()
        except pygame.error as exc:
            self._window = None
            self.problem = str(exc)
            log.warning("display lost: %s", exc)
            self._on_change()

    # --- composing ----------------------------------------------------------------

    def compose(self, now: datetime | None = None) -> pygame.Surface:
        now = now or datetime.now(ZONE)
        if self.room.meeting is None:
            self._idle(now)
        else:
            self._meeting(now)
        self.frames += 1
        return self.canvas

    def _idle(self, now: datetime) -> None:
        c, (w, h) = self.canvas, self.size
        c.fill(BACKGROUND)
        draw_text(c, "PHÒNG HỌP TRỰC TUYẾN", h // 24, MUTED, center=(w // 2, h // 10))
        name = self.info.get("name") or self.config.display_name
        draw_text(c, name, h // 11, TEXT, center=(w // 2, h // 4), bold=True, max_width=w * 9 // 10)
        draw_text(c, now.strftime("%H:%M"), h // 4, ACCENT, center=(w // 2, h // 2), bold=True)
        draw_text(c, vietnamese_date(now), h // 20, TEXT, center=(w // 2, h * 2 // 3))
        following = self.info.get("next_meeting")
        if following:
            start = datetime.fromisoformat(following["start"]).astimezone(ZONE)
            when = f"{start:%H:%M} {vietnamese_date(start)}"
            line = f"Cuộc họp tiếp theo: {following['title']} — {when}"
        else:
            line = "Chưa có cuộc họp nào được lên lịch"
        draw_text(c, line, h // 26, TEXT, center=(w // 2, h * 31 // 40), max_width=w * 9 // 10)
        self._status_bar(now, self._connection_line())

    def _connection_line(self) -> tuple[str, tuple[int, int, int]]:
        if self.room.connected:
            return "● Đã kết nối máy chủ điều phối", GOOD
        return "● Mất kết nối máy chủ điều phối — đang thử kết nối lại", ALERT

    def _status_bar(self, now: datetime, left: tuple[str, tuple[int, int, int]]) -> None:
        c, (w, h) = self.canvas, self.size
        bar = h // 14
        c.fill(PANEL, pygame.Rect(0, h - bar, w, bar))
        draw_text(c, left[0], bar // 2, left[1], topleft=(bar // 3, h - bar + bar // 4), max_width=w * 2 // 3)
        problems = "; ".join(self.device_problems.values())
        right = f"{problems}   {now:%H:%M}" if problems else now.strftime("%H:%M")
        draw_text(
            c, right, bar // 2, ALERT if problems else TEXT, midright=(w - bar // 3, h - bar // 2), max_width=w // 3
        )

    def _meeting(self, now: datetime) -> None:
        c, (w, h) = self.canvas, self.size
        meeting = self.room.meeting
        assert meeting is not None
        c.fill((0, 0, 0))
        bar = h // 14
        area = pygame.Rect(0, 0, w, h - bar)
        floor = self.room.floor
        me = self.room.room_id
        on_program: str | None = floor if floor not in (None, me) else meeting.chair
        if on_program == me:
            on_program = None
        fresh = self.program is not None and time.monotonic() - self.program_at < 3.0
        if fresh:
            self._blit_program(area)
        else:
            draw_text(
                c, "Đang chờ hình ảnh từ phòng chủ trì…", h // 20, MUTED, center=area.center, max_width=w * 9 // 10
            )
        if on_program:
            # A lower-third caption: who is on the screen.
            role = "Chủ trì" if on_program == meeting.chair else "Đang phát biểu"
            text = f"{role}: {self.name_of(on_program)}"
            fitted = min(w // 2, font(bar // 2).get_rect(text).width + bar)
            caption = pygame.Surface((fitted, bar), pygame.SRCALPHA)
            caption.fill((0, 0, 0, 160))
            spot = caption.get_rect(bottomleft=(bar // 3, area.bottom - bar // 3))
            c.blit(caption, spot)
            draw_text(
                c,
                text,
                bar // 2,
                TEXT,
                topleft=(spot.x + bar // 3, spot.y + bar // 4),
                max_width=spot.width - bar // 2,
            )
        if floor not in (None, meeting.chair) and meeting.chair != me:
            # The floor is elsewhere: the chair stays on screen as an inset card.
            inset = pygame.Rect(0, 0, w // 4, h // 6)
            inset.bottomright = (w - bar // 3, h - bar - bar // 3)
            c.fill(PANEL, inset)
            pygame.draw.rect(c, ACCENT, inset, max(2, h // 240))
            draw_text(c, "Chủ trì", h // 36, MUTED, center=(inset.centerx, inset.y + inset.height // 3))
            draw_text(
                c,
                self.name_of(meeting.chair),
                h // 28,
                TEXT,
                center=(inset.centerx, inset.y + inset.height * 2 // 3),
                bold=True,
                max_width=inset.width * 9 // 10,
            )
        self._status_bar(now, (meeting_status(self.room), GOOD if self.room.connected else ALERT))

    def _blit_program(self, area: pygame.Rect) -> None:
        frame = self.program
        scale = min(area.width / frame.width, area.height / frame.height)
        width, height = int(frame.width * scale) // 2 * 2, int(frame.height * scale) // 2 * 2
        rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
        picture = pygame.image.frombuffer(rgb.tobytes(), (width, height), "RGB")
        self.canvas.blit(picture, picture.get_rect(center=area.center))

    # --- pictures for the operator and the technician ----------------------------------

    def to_png(self, width: int | None = None) -> bytes:
        surface = self.canvas
        if width is not None and width < self.size[0]:
            surface = pygame.transform.smoothscale(surface, (width, self.size[1] * width // self.size[0]))
        buffer = io.BytesIO()
        pygame.image.save(surface, buffer, "screen.png")
        return buffer.getvalue()

    async def _upload(self, client: httpx.AsyncClient, token: str) -> None:
        png = self.to_png(self.config.display.thumbnail_width)
        digest = hashlib.sha256(png).digest()
        if digest == self._uploaded_digest:
            return
        response = await client.put(
            f"{self.config.coordinator_url}/api/v1/rooms/{self.config.room}/screen",
            content=png,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "image/png"},
        )
        if response.status_code == 204:
            self._uploaded_digest = digest
        else:
            log.warning("display: the coordinator refused the TV picture (HTTP %s)", response.status_code)

    async def _refresh_info(self, client: httpx.AsyncClient, token: str) -> None:
        response = await client.get(
            f"{self.config.coordinator_url}/api/v1/rooms/{self.config.room}/agent-info",
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code == 200:
            self.info = response.json()

    async def run(self, stop: asyncio.Event, token: Callable[[], str | None]) -> None:
        cfg = self.config.display
        interval = 1 / cfg.fps
        info_at = upload_at = 0.0
        meeting_seen: int | bool | None = False
        async with httpx.AsyncClient(timeout=10, verify=tls(self.config)) as client:
            while not stop.is_set():
                started = time.monotonic()
                self.compose()
                self.png = None  # made on demand from the canvas
                self._show()
                current = self.room.meeting.id if self.room.meeting else None
                secret = token()
                if secret and self.room.connected and (started >= info_at or current != meeting_seen):
                    meeting_seen, info_at = current, started + INFO_REFRESH
                    with contextlib.suppress(httpx.HTTPError):
                        await self._refresh_info(client, secret)
                if secret and cfg.upload_seconds and started >= upload_at and self.room.connected:
                    upload_at = started + cfg.upload_seconds
                    with contextlib.suppress(httpx.HTTPError):
                        await self._upload(client, secret)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, interval - (time.monotonic() - started)))
        with contextlib.suppress(pygame.error):
            pygame.display.quit()
