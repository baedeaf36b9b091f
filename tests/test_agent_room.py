"""A room agent as a real process: unplugged camera, TV on a virtual display, systemd notify and watchdog."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT, Agent, Coordinator, free_port, sample, wait_for

FAULTS = "[debug]\nallow_device_faults = true\n"
DECODE = "[media]\ndecode = true\n"


def _rooms(coordinator: Coordinator) -> dict[str, dict[str, object]]:
    with coordinator.api() as api:
        return {room["id"]: room for room in api.get("/api/v1/rooms").json()}


def _routed_program(coordinator: Coordinator, room: str) -> object:
    media = _rooms(coordinator)[room].get("media")
    return media.get("program") if isinstance(media, dict) else None


def _camera_ok(coordinator: Coordinator, room: str) -> float | None:
    return sample(coordinator.metrics(), "phonghop_room_device_ok", room=room, device="camera")


def test_camera_unplugged_mid_meeting_sends_the_slate_and_recovers(
    coordinator: Coordinator, start_agent: Callable[..., Agent]
) -> None:
    chair = start_agent("ubnd", "hall", FAULTS, local_api_port=free_port())
    viewer = start_agent("tdp-01", extra=DECODE, local_api_port=free_port())
    meeting = coordinator.schedule(["tdp-01"])

    def program() -> tuple[object, object]:
        """What tdp-01 decodes on its program slot: (room, slate)."""
        return viewer.decoded(["ubnd"])[0], viewer.status()["decoded"]["slate"]

    wait_for(lambda: program() == ("ubnd", False), 90, "tdp-01 to see the chair")
    assert _routed_program(coordinator, "tdp-01") == "ubnd"
    wait_for(lambda: _camera_ok(coordinator, "ubnd") == 1, 30, "device_ok{camera} 1 (with the next heartbeat)")

    with chair.local() as local:
        local.post("/debug/devices/camera/fail").raise_for_status()
        wait_for(lambda: program() == (None, True), 60, "tdp-01 to see the chair's slate")
        assert _routed_program(coordinator, "tdp-01") == "ubnd"
        wait_for(lambda: _camera_ok(coordinator, "ubnd") == 0, 30, "device_ok{camera} 0 on /metrics")
        metrics = coordinator.metrics()
        for room in ("ubnd", "tdp-01"):
            assert sample(metrics, "phonghop_room_in_meeting", room=room, meeting=str(meeting)) == 1
        status = local.get("/status").json()
        assert status["devices"]["camera"]["ok"] is False
        assert status["devices"]["microphone"]["ok"] is True

        local.post("/debug/devices/camera/restore").raise_for_status()
        wait_for(lambda: program() == ("ubnd", False), 60, "the chair's picture back at tdp-01")
        wait_for(lambda: _camera_ok(coordinator, "ubnd") == 1, 30, "device_ok{camera} 1 again")
    assert sample(coordinator.metrics(), "phonghop_room_in_meeting", room="tdp-01", meeting=str(meeting)) == 1


def test_tv_on_a_virtual_display_shows_the_meeting_and_uploads_it(
    coordinator: Coordinator, start_agent: Callable[..., Agent]
) -> None:
    start_agent("ubnd", "hall")
    display = "[display]\nenabled = true\nfullscreen = false\nupload_seconds = 1\n"
    room = start_agent("tdp-01", extra=display, local_api_port=free_port(), env={"SDL_VIDEODRIVER": "dummy"})
    coordinator.schedule(["tdp-01"])
    with room.local() as local:
        wait_for(lambda: _routed_program(coordinator, "tdp-01") == "ubnd", 40, "program")
        assert local.get("/healthz").json() == {"ok": True, "room": "tdp-01", "connected": True}
        wait_for(
            lambda: sample(coordinator.metrics(), "phonghop_room_device_ok", room="tdp-01", device="display") == 1,
            10,
            "display ok",
        )
        time.sleep(1.5)  # a few composed frames with the program picture
        screen = local.get("/screen.png")
        assert screen.status_code == 200
        assert screen.content.startswith(b"\x89PNG")
        (ROOT / "artifacts").mkdir(exist_ok=True)
        (ROOT / "artifacts" / "tv-meeting-live.png").write_bytes(screen.content)
    with coordinator.api() as api:
        uploaded = wait_for(lambda: api.get("/api/v1/rooms/tdp-01/screen"), 15, "the TV picture on the coordinator")
        assert uploaded.status_code == 200
        assert uploaded.headers["content-type"] == "image/png"
        assert len(uploaded.content) < len(screen.content)  # the thumbnail


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def _received(sock: socket.socket, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    messages: list[str] = []
    while time.monotonic() < deadline:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return messages


def test_systemd_ready_watchdog_and_a_hung_loop(
    coordinator: Coordinator, tmp_path: Path, notify_socket: tuple[socket.socket, Path]
) -> None:
    sock, path = notify_socket
    port = free_port()
    token = coordinator.enroll("tdp-01")
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "600000"}
    agent = Agent(coordinator, "tdp-01", token, tmp_path / "tdp-01", "[debug]\nallow_hang = true\n", port, env)
    agent.start()
    try:
        first = wait_for(lambda: _received(sock, 0.5), 40, "the first notification")
        messages = first + _received(sock, 2.0)
        assert any(m.startswith("READY=1") for m in messages), messages
        assert sum(m == "WATCHDOG=1" for m in messages) >= 3, messages  # every 0.3 s
        log = agent.log.read_text()
        assert "agent[tdp-01 meeting=-]" in log

        with agent.local() as local, pytest.raises(httpx.ReadTimeout):
            local.post("/debug/hang", timeout=1.0)
        _received(sock, 0.5)  # a ping already on its way
        assert [m for m in _received(sock, 2.0) if m == "WATCHDOG=1"] == []
        assert agent.proc is not None
        assert agent.proc.poll() is None  # alive but hung: systemd's case
    finally:
        agent.stop(signal.SIGKILL)


def test_sigterm_says_stopping_and_exits_zero(
    coordinator: Coordinator,
    start_agent: Callable[..., Agent],
    tmp_path: Path,
    notify_socket: tuple[socket.socket, Path],
) -> None:
    sock, path = notify_socket
    start_agent("ubnd", "hall")
    token = coordinator.enroll("tdp-01")
    agent = Agent(coordinator, "tdp-01", token, tmp_path / "tdp-01", "", 0, {"NOTIFY_SOCKET": str(path)}).start()
    meeting = coordinator.schedule(["tdp-01"])
    wait_for(
        lambda: sample(coordinator.metrics(), "phonghop_room_in_meeting", room="tdp-01", meeting=str(meeting)) == 1,
        40,
        "tdp-01 in the meeting",
    )
    assert f"agent[tdp-01 meeting={meeting}]" in agent.log.read_text()
    assert agent.stop(signal.SIGTERM) == 0
    messages = _received(sock, 0.5)
    assert "STOPPING=1" in messages
    assert "agent stopped" in agent.log.read_text()
