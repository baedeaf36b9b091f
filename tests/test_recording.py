"""Recording: the recorder is one more subscriber of the meeting's router, writing WebM pieces.

A meeting whose floor goes to a room and back is recorded in short pieces; the pieces are read back
with PyAV: the picture shows the chair's test code, then the floor holder's, then the chair's, at the
times the floor changed, and the sound holds the chair's tone throughout and the floor holder's tone
while it has the floor. The pieces are played over HTTP by a signed-in user only.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from phonghop.testpattern import read_code, room_with_code, tone_hz
from tests.alerting import MonitoringStack, Timing
from tests.harness import Agent, Coordinator, holds, sample, small_disk, wait_for
from tests.webtools import signed_in

ROOMS = ["ubnd", "tdp-01"]
PIECE_SECONDS = 6
VIEWER = ("huyen", "mat-khau-chi-xem")


@pytest.fixture
def coordinator(tmp_path: Path) -> Coordinator:
    coord = Coordinator(tmp_path / "coordinator", {"PHONGHOP_RECORDING_PIECE_SECONDS": str(PIECE_SECONDS)}).start()
    yield coord  # type: ignore[misc]
    coord.stop()


def _pictures(pieces: list[Path]) -> list[tuple[float, str | None]]:
    """(seconds since the first piece's start, whose code) for every decoded frame of every piece."""
    seen: list[tuple[float, str | None]] = []
    offset = 0.0
    for piece in pieces:
        with av.open(str(piece)) as container:
            stream = container.streams.video[0]
            last = 0.0
            for frame in container.decode(stream):
                at = float(frame.pts * stream.time_base) if frame.pts is not None else last
                seen.append((offset + at, room_with_code(read_code(frame.to_ndarray(format="gray")), ROOMS)))
                last = at
            offset += last
    return seen


def _sound(piece: Path) -> np.ndarray:
    with av.open(str(piece)) as container:
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        rate = container.streams.audio[0].rate
    assert rate == 48000
    return np.concatenate(chunks).astype(np.float64)


def _level(samples: np.ndarray, hz: float, rate: int = 48000) -> float:
    """The strongest line of the spectrum within 15 Hz of ``hz``."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[(freqs > hz - 15) & (freqs < hz + 15)].max())


def test_a_meeting_is_recorded_as_it_was_seen_and_heard(
    coordinator: Coordinator, start_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    start_agent("ubnd", "hall")
    room_token = start_agent("tdp-01").token_file.read_text().strip()
    meeting = coordinator.schedule(["tdp-01"], start_in=0, seconds=600)
    folder = coordinator.data_dir / "recordings" / f"cuoc-hop-{meeting}"
    wait_for(lambda: sample(coordinator.metrics(), "phonghop_recording_active", meeting=str(meeting)) == 1.0,
             30, "the recording to start")  # fmt: skip
    began = time.monotonic()
    time.sleep(4)  # the recording's own timeline: four seconds of the chair alone
    with coordinator.api() as api:
        assert api.put(f"/api/v1/meetings/{meeting}/floor", json={"room": "tdp-01"}).status_code == 200
        given = time.monotonic() - began
        time.sleep(5)  # five seconds of the floor holder
        assert api.delete(f"/api/v1/meetings/{meeting}/floor").status_code == 200
        taken = time.monotonic() - began
        time.sleep(4)  # four of the chair again
        assert api.post(f"/api/v1/meetings/{meeting}/end").status_code == 200
        ended = time.monotonic() - began
    pieces = sorted(folder.glob("*.webm"))
    assert len(pieces) >= 2, pieces  # cut every PIECE_SECONDS

    pictures = _pictures(pieces)
    order = [who for _, who in pictures if who is not None]
    changes = [order[0]] + [b for a, b in itertools.pairwise(order) if a != b]
    assert changes == ["ubnd", "tdp-01", "ubnd"], changes
    first_floor = next(at for at, who in pictures if who == "tdp-01")
    back = next(at for at, who in pictures if who == "ubnd" and at > first_floor)
    assert abs(first_floor - given) < 1.5, (first_floor, given)
    assert abs(back - taken) < 1.5, (back, taken)
    assert abs(pictures[-1][0] - ended) < 1.5, (pictures[-1][0], ended)

    sound = np.concatenate([_sound(piece) for piece in pieces])
    second = 48000
    chair_only = sound[int(1.5 * second) : int(3.5 * second)]
    with_floor = sound[int((given + 1.5) * second) : int((given + 3.5) * second)]
    # The chair's tone throughout; the floor holder's as loud as it while it has the floor, absent before.
    assert _level(chair_only, tone_hz("tdp-01")) < _level(chair_only, tone_hz("ubnd")) / 100
    assert _level(with_floor, tone_hz("tdp-01")) > _level(with_floor, tone_hz("ubnd")) / 10

    # Played by a signed-in user (seeking works: range requests), never by a signed-out browser or a room.
    assert coordinator.add_user(VIEWER[0], "viewer", VIEWER[1]).returncode == 0
    path = f"/cuoc-hop/{meeting}/ghi-hinh/{pieces[0].name}"
    with signed_in(coordinator, *VIEWER) as (client, _):
        page = client.get(f"/cuoc-hop/{meeting}").text
        assert pieces[0].name in page
        part = client.get(path, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206
        assert part.content == pieces[0].read_bytes()[:100]
        assert client.get(f"/cuoc-hop/{meeting}/ghi-hinh/..%2Fcoordinator.db").status_code == 404
    with coordinator.api(token=None) as anonymous:
        refused = anonymous.get(path)
        assert refused.status_code == 303
    with coordinator.api(token=room_token) as room:
        assert room.get(path).status_code == 303  # a room's token opens no page


def test_a_nearly_full_recordings_disk_stops_the_recording_not_the_meeting(tmp_path: Path) -> None:
    """Recordings on a small disk of their own (an ext4 image) that has little more than the floor free:
    recording stops with a reason, the alert fires, the meeting and the database go on."""
    with small_disk(tmp_path / "disk") as disk:
        _recordings_disk_fills_up(tmp_path, disk)


def _recordings_disk_fills_up(tmp_path: Path, disk: Path) -> None:
    floor_mb = 2
    env = {"PHONGHOP_RECORDINGS_DIR": str(disk), "PHONGHOP_RECORDING_MIN_FREE_MB": str(floor_mb)}
    coordinator = Coordinator(tmp_path / "coordinator", env)
    monitoring: MonitoringStack | None = None
    agents: list[Agent] = []
    try:
        # Room for about 300 KB of recording (a few seconds) above the floor.
        spare = shutil.disk_usage(disk).free - floor_mb * 1048576 - 300_000
        (disk / "filler").write_bytes(b"\0" * spare)
        coordinator.start()
        monitoring = stack = MonitoringStack(tmp_path / "monitoring", coordinator.port, None, Timing()).start()
        for room, group in (("ubnd", "hall"), ("tdp-01", "residential_group")):
            token = coordinator.enroll(room, group)
            agents.append(Agent(coordinator, room, token, tmp_path / "rooms" / room).start())
        meeting = coordinator.schedule(["tdp-01"], start_in=0, seconds=600)
        label = {"meeting": str(meeting)}
        wait_for(lambda: sample(coordinator.metrics(), "phonghop_recording_active", **label) == 1.0, 30, "recording")
        wait_for(lambda: sample(coordinator.metrics(), "phonghop_recording_active", **label) == 0.0, 30, "the stop")
        alert = wait_for(
            lambda: [a for a in stack.alerts() if a["labels"]["alertname"] == "PhongHopRecordingStopped"], 30, "alert"
        )
        assert "không được ghi hình" in alert[0]["annotations"]["summary"]
        assert "free on the recordings' disk" in (coordinator.data_dir / "coordinator.log").read_text()
        holds(
            lambda: all(
                sample(coordinator.metrics(), "phonghop_room_in_meeting", room=room, **label) == 1.0
                for room in ("ubnd", "tdp-01")
            ),
            3,
            "both rooms to stay in the meeting",
        )
        assert coordinator.schedule(["tdp-01"], start_in=3600, title="Họp sau") > meeting  # the database writes
        pieces = list(disk.glob("cuoc-hop-*/*.webm"))
        assert len(pieces) == 1
        with av.open(str(pieces[0])) as container:  # what was written before the stop plays
            assert sum(1 for _ in container.decode(video=0)) > 10
    finally:
        for agent in agents:
            agent.stop()
        coordinator.stop()
        if monitoring is not None:
            monitoring.stop()


def test_a_coordinator_killed_mid_recording_loses_only_the_moment_of_the_kill(
    coordinator: Coordinator, start_agent: Callable[..., Agent]
) -> None:
    start_agent("ubnd", "hall")
    start_agent("tdp-01")
    meeting = coordinator.schedule(["tdp-01"], start_in=0, seconds=600)
    folder = coordinator.data_dir / "recordings" / f"cuoc-hop-{meeting}"
    label = {"meeting": str(meeting)}
    wait_for(lambda: sample(coordinator.metrics(), "phonghop_recording_active", **label) == 1.0, 30, "recording")
    time.sleep(PIECE_SECONDS + 3)  # one piece closed, the next one being written
    coordinator.stop(signal.SIGKILL)
    before = sorted(folder.glob("*.webm"))
    assert len(before) == 2, before
    coordinator.start()
    wait_for(lambda: sample(coordinator.metrics(), "phonghop_recording_active", **label) == 1.0, 30, "recording again")
    time.sleep(3)  # some recording after the restart
    with coordinator.api() as api:
        assert api.post(f"/api/v1/meetings/{meeting}/end").status_code == 200
    after = sorted(folder.glob("*.webm"))
    assert len(after) == 3, after
    seconds = [pictures[-1][0] for pictures in (_pictures([piece]) for piece in after)]
    assert seconds[0] > PIECE_SECONDS - 1.5  # closed whole
    assert seconds[1] > 1.5  # cut by the kill, and still plays up to it (give or take what was buffered)
    assert seconds[2] > 1.5  # recording resumed after the restart
