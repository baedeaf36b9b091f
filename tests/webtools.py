"""Signing in to the web pages from a test, the way a browser does (cookie + CSRF token from the form)."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.harness import Coordinator

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match is not None, "no CSRF token in the page"
    return match.group(1)


@contextmanager
def signed_in(coordinator: Coordinator, name: str, password: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding a session cookie, and the session's CSRF token."""
    with httpx.Client(base_url=coordinator.url, timeout=30, verify=coordinator.verify) as client:
        token = csrf_of(client.get("/dang-nhap").text)
        data = {"csrf_token": token, "name": name, "password": password, "next": "/"}
        response = client.post("/dang-nhap", data=data)
        assert response.status_code == 303, response.text
        yield client, csrf_of(client.get("/").text)


def invite(coordinator: Coordinator, meeting: int, operator: tuple[str, str], name: str) -> tuple[str, str]:
    """The console's new invitation: its link and its code, as the operator sees them once."""
    with signed_in(coordinator, *operator) as (client, csrf):
        response = client.post(f"/cuoc-hop/{meeting}/moi-khach", data={"csrf_token": csrf, "name": name})
        assert response.status_code == 303, response.text
        page = client.get(f"/cuoc-hop/{meeting}").text
        link = re.search(r'id="invite-link" class="invite-link" value="([^"]+)"', page)
        code = re.search(r'id="invite-code">(\d+)<', page)
        assert link is not None, page
        assert code is not None, page
        assert 'id="invite-link"' not in client.get(f"/cuoc-hop/{meeting}").text, "the link is shown only once"
        return link.group(1), code.group(1)


def field_error(html: str, field: str) -> str | None:
    """The message shown next to a form field, if any."""
    match = re.search(rf'id="error-{field}"[^>]*>([^<]+)<', html)
    return match.group(1) if match else None


def png_of(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` (one grey scanline of data, enough for the header checks)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1)))
        + chunk(b"IEND", b"")
    )
