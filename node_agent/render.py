"""Text and pictures drawn with SDL2 (pygame), shared by the TV and the camera slate.

Only pygame's software surfaces and FreeType are used here, so this works
without any display; the TV module opens the window.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np
import pygame
import pygame.freetype
from numpy.typing import NDArray

__all__ = ["draw_text", "find_font", "font", "pygame", "slate_picture", "to_rgb"]

# Debian's fonts-dejavu-core: DejaVu Sans has every Vietnamese letter with its diacritics.
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)
BOLD_CANDIDATES = tuple(p.with_name("DejaVuSans-Bold.ttf") for p in FONT_CANDIDATES)

BACKGROUND = (18, 32, 56)
PANEL = (30, 48, 80)
TEXT = (240, 240, 240)
MUTED = (170, 185, 205)
ACCENT = (255, 196, 0)
ALERT = (220, 60, 50)
GOOD = (60, 170, 90)


class FontMissing(RuntimeError):
    pass


def find_font(configured: Path | None = None, bold: bool = False) -> Path:
    candidates = ((configured,) if configured else ()) + (BOLD_CANDIDATES if bold else FONT_CANDIDATES)
    for path in candidates:
        if path is not None and path.is_file():
            return path
    raise FontMissing(
        "no font with Vietnamese letters found (looked for "
        + ", ".join(str(p) for p in candidates if p is not None)
        + "); install the Debian package fonts-dejavu-core or set [display] font_file"
    )


@cache
def font(size: int, bold: bool = False, configured: Path | None = None) -> pygame.freetype.Font:
    if not pygame.freetype.get_init():
        pygame.freetype.init()
    face = pygame.freetype.Font(str(find_font(configured, bold)), size)
    face.antialiased = True
    return face


def draw_text(
    surface: pygame.Surface,
    text: str,
    size: int,
    color: tuple[int, int, int],
    *,
    center: tuple[int, int] | None = None,
    topleft: tuple[int, int] | None = None,
    midright: tuple[int, int] | None = None,
    bold: bool = False,
    max_width: int | None = None,
    configured: Path | None = None,
) -> pygame.Rect:
    """Draw one line; shrink it until it fits ``max_width``."""
    face = font(size, bold, configured)
    rendered, rect = face.render(text, color)
    while max_width is not None and rect.width > max_width and size > 10:
        size = int(size * 0.9)
        face = font(size, bold, configured)
        rendered, rect = face.render(text, color)
    if center is not None:
        rect.center = center
    elif midright is not None:
        rect.midright = midright
    elif topleft is not None:
        rect.topleft = topleft
    surface.blit(rendered, rect)
    return rect


def to_rgb(surface: pygame.Surface) -> NDArray[np.uint8]:
    """The surface as a height x width x 3 array (PyAV's rgb24 layout)."""
    return np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2))


def slate_picture(width: int, height: int, room_name: str, message: str) -> NDArray[np.uint8]:
    """The picture sent instead of a missing camera: who it is and what is wrong.

    A plain light band on top and a dark band at the bottom let a receiver tell
    the slate from a picture (``phonghop.testpattern.is_slate``).
    """
    surface = pygame.Surface((width, height))
    surface.fill(PANEL)
    band = max(4, height // 8)
    surface.fill((200, 200, 200), pygame.Rect(0, 0, width, band))
    surface.fill((16, 16, 16), pygame.Rect(0, height - band, width, band))
    draw_text(
        surface,
        message,
        max(12, height // 10),
        TEXT,
        center=(width // 2, height // 2 - height // 12),
        bold=True,
        max_width=width * 9 // 10,
    )
    draw_text(
        surface,
        room_name,
        max(10, height // 16),
        ACCENT,
        center=(width // 2, height // 2 + height // 8),
        max_width=width * 9 // 10,
    )
    return to_rgb(surface)
