"""A meeting's recordings: listed on its console, played and downloaded by signed-in users only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av
from fastapi import APIRouter
from fastapi.responses import FileResponse

from coordinator.recording.recorder import started_of
from coordinator.services import Services, Svc
from coordinator.settings import Settings
from coordinator.web.security import Refused, Viewer

router = APIRouter(include_in_schema=False)
PIECE_NAME = re.compile(r"^\d{8}T\d{6}Z-lan-\d+-\d{3}\.webm$")


@dataclass(frozen=True)
class RecordingRow:
    name: str
    started: datetime | None
    seconds: float | None  # None: a piece still being written, or cut short without its length
    size: int


def folder_of(settings: Settings, meeting_id: int) -> Path:
    return settings.resolved_recordings_dir / f"cuoc-hop-{meeting_id}"


def _seconds(piece: Path) -> float | None:
    try:
        with av.open(str(piece)) as container:
            return container.duration / 1_000_000 if container.duration else None
    except (av.FFmpegError, OSError):
        return None


def recordings_of(services: Services, meeting_id: int) -> list[RecordingRow]:
    """The meeting's pieces, newest first (the one being written has no length yet)."""
    folder = folder_of(services.settings, meeting_id)
    pieces = sorted(folder.glob("*.webm"), reverse=True) if folder.is_dir() else []
    return [
        RecordingRow(piece.name, started_of(piece), _seconds(piece), piece.stat().st_size)
        for piece in pieces
        if PIECE_NAME.match(piece.name)
    ]


@router.get("/cuoc-hop/{meeting_id}/ghi-hinh/{name}")
async def recording(meeting_id: int, name: str, services: Svc, user: Viewer) -> FileResponse:
    """One piece, with range requests (the browser's player seeks in it)."""
    path = folder_of(services.settings, meeting_id) / name
    if not PIECE_NAME.match(name) or not path.is_file():
        raise Refused("Không có bản ghi hình này (có thể đã quá hạn lưu và bị xóa).", status=404)
    return FileResponse(path, media_type="video/webm", filename=name, content_disposition_type="inline")
