"""The TV picture, composed through SDL2 on a virtual display (SDL_VIDEODRIVER=dummy).

The screenshots land in ``artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import av
import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from node_agent.config import AgentConfig
from node_agent.render import pygame
from node_agent.room import Room
from node_agent.tv import ZONE, Television, meeting_status, vietnamese_date
from phonghop.protocol import MeetingRef
from phonghop.testpattern import draw_frame, read_code, room_code

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
NAMES = {"ubnd": "UBND phường Phong Sơn", "tdp-01": "Tổ dân phố 1", "tdp-07": "Tổ dân phố Nghĩa Dũng"}


def _tv(tmp_path: Path) -> Television:
    config = AgentConfig.model_validate(
        {
            "room": "tdp-01",
            "room_name": "Tổ dân phố 1",
            "coordinator_url": "http://127.0.0.1:9",
            "allow_plain_http": True,
            "token_file": str(tmp_path / "token"),
            "display": {"enabled": True, "fullscreen": False, "width": 1280, "height": 720},
        }
    )
    room = Room("tdp-01")
    room.connected = True
    tv = Television(config, room)
    tv.info = {
        "name": "Tổ dân phố 1",
        "names": NAMES,
        "next_meeting": {"id": 3, "title": "Giao ban tuần", "start": "2026-11-30T01:00:00+00:00", "chair": "ubnd"},
    }
    return tv


def _save(tv: Television, name: str) -> bytes:
    png = tv.to_png()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_bytes(png)
    return png


def _pixels(png: bytes) -> np.ndarray:
    import io

    surface = pygame.image.load(io.BytesIO(png), "x.png")
    return pygame.surfarray.array3d(surface).transpose(1, 0, 2)


def test_vietnamese_dates() -> None:
    assert vietnamese_date(datetime(2026, 11, 26, tzinfo=ZONE)) == "Thứ Năm, 26/11/2026"


def test_idle_screen(tmp_path: Path) -> None:
    tv = _tv(tmp_path)
    tv.compose(datetime(2026, 11, 26, 9, 30, tzinfo=ZONE))
    png = _save(tv, "tv-idle.png")
    assert png.startswith(b"\x89PNG")
    pixels = _pixels(png)
    assert pixels.shape == (720, 1280, 3)
    assert pixels[5, 5].tolist() == [18, 32, 56]  # the idle background
    # The clock is drawn in the accent colour in the middle of the screen.
    middle = pixels[300:420, 400:880]
    assert ((middle == [255, 196, 0]).all(axis=2)).sum() > 2000
    thumbnail = tv.to_png(640)
    assert _pixels(thumbnail).shape == (360, 640, 3)


def test_idle_screen_says_when_the_link_is_lost(tmp_path: Path) -> None:
    tv = _tv(tmp_path)
    tv.room.connected = False
    tv.compose(datetime(2026, 11, 26, 9, 30, tzinfo=ZONE))
    pixels = _pixels(_save(tv, "tv-idle-offline.png"))
    status = pixels[670:720, 0:800]
    assert ((np.abs(status.astype(int) - [220, 60, 50]).sum(axis=2)) < 60).sum() > 300  # red status text


def test_meeting_screen_with_the_floor_elsewhere(tmp_path: Path) -> None:
    tv = _tv(tmp_path)
    tv.room.meeting = MeetingRef(id=7, occurrence=12, title="Giao ban tuần", chair="ubnd", mode="presentation")
    tv.room.floor = "tdp-07"
    frame = av.VideoFrame.from_ndarray(draw_frame(room_code("tdp-07"), 3, 640, 360), format="yuv420p")
    tv.on_video("program", frame)
    tv.device_problems = {"camera": "Mất camera"}
    tv.compose(datetime(2026, 11, 26, 9, 30, tzinfo=ZONE))
    pixels = _pixels(_save(tv, "tv-meeting.png"))
    # The program picture fills the screen and still carries the room's code at TV size.
    program = pixels[0:668, 46:1234]  # 640x360 scaled to the 1280x669 area above the status line
    gray = (0.299 * program[..., 0] + 0.587 * program[..., 1] + 0.114 * program[..., 2]).astype(np.uint8)
    assert read_code(gray) == room_code("tdp-07")
    # The chair's card sits at the bottom right, framed in the accent colour.
    inset = pixels[500:660, 900:1270]
    assert ((inset == [255, 196, 0]).all(axis=2)).sum() > 500


def test_meeting_screen_waits_for_the_picture(tmp_path: Path) -> None:
    tv = _tv(tmp_path)
    tv.room.meeting = MeetingRef(id=7, occurrence=12, title="Giao ban tuần", chair="ubnd", mode="presentation")
    tv.compose()
    pixels = _pixels(_save(tv, "tv-meeting-waiting.png"))
    assert pixels[10, 640].tolist() == [0, 0, 0]


def test_the_window_opens_on_the_virtual_display(tmp_path: Path) -> None:
    if os.environ.get("SDL_VIDEODRIVER") != "dummy":
        pytest.skip("runs with the dummy SDL driver only")
    tv = _tv(tmp_path)
    tv.compose()
    tv._show()
    assert tv.ok, tv.problem
    assert pygame.display.get_driver() == "dummy"
    pygame.display.quit()


def test_the_status_line_says_when_the_room_is_on_a_weak_link() -> None:
    room = Room("tdp-01")
    room.connected = True
    room.meeting = MeetingRef(id=7, occurrence=12, title="Giao ban tuần", chair="ubnd", mode="presentation")
    assert meeting_status(room) == "● Đang họp: Giao ban tuần"
    room.weak_link = "mất 8% gói tin"
    room.floor = "tdp-01"
    assert meeting_status(room) == "● Đang họp: Giao ban tuần · Mạng yếu · PHÒNG ĐANG ĐƯỢC PHÁT BIỂU"
    room.connected = False
    assert meeting_status(room) == "● Mất kết nối máy chủ — đang kết nối lại"
