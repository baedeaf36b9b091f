"""The agent's devices: real V4L2/ALSA paths where this machine has them, the fallbacks where it does not."""

from __future__ import annotations

import asyncio
import fractions
import os
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av.packet import Packet

from node_agent.config import AgentConfig, Voice
from node_agent.devices import DeviceError, SoundOutput, V4l2Camera, list_cameras, list_devices
from node_agent.encoding import VoiceOpusEncoder, encode_opus_tone
from node_agent.sound import Speaker
from node_agent.sources import FallbackTrack, RoomSource
from node_agent.testsource import Faults, PacketLoop, TestDevices
from phonghop.testpattern import SLATE_CODE, is_slate, read_code, room_code

ASOUNDRC = """
pcm.phonghop_file {
  type file
  slave.pcm "null"
  file "%s"
  format "raw"
  hint { show on description "phonghop test speaker" }
}
"""


def _config(tmp_path: Path, **sections: dict[str, Any]) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "room": "tdp-01",
            "room_name": "Tổ dân phố 1",
            "coordinator_url": "http://127.0.0.1:9",
            "allow_plain_http": True,
            "token_file": str(tmp_path / "token"),
            "test_source": {"width": 320, "height": 180, "fps": 10},
            **sections,
        }
    )


def _decode_vp8(packets: list[Packet[Any]]) -> list[np.ndarray]:
    codec = av.CodecContext.create("vp8", "r")
    pictures = []
    for packet in packets:
        for frame in codec.decode(av.Packet(bytes(packet))):
            pictures.append(frame.to_ndarray(format="gray"))
    return pictures


def test_an_absent_v4l2_camera_is_a_clear_device_error() -> None:
    with pytest.raises(DeviceError, match="không tồn tại: cắm camera USB vào"):
        V4l2Camera("/dev/video-khong-co", 640, 360, 15)


def test_cameras_are_listed_from_sysfs(tmp_path: Path) -> None:
    for index, (name, node_index) in enumerate([("HD Webcam C270", "0"), ("HD Webcam C270", "1")]):
        node = tmp_path / f"video{index}"
        node.mkdir()
        (node / "name").write_text(name + "\n")
        (node / "index").write_text(node_index + "\n")
    cameras = list_cameras(tmp_path)
    assert [(c.name, c.description, c.default) for c in cameras] == [("/dev/video0", "HD Webcam C270", True)]
    assert list_cameras(tmp_path / "none") == []


def _test_source(config: AgentConfig, on_change: Any = lambda: None) -> tuple[RoomSource, TestDevices]:
    test = TestDevices(config)
    return RoomSource(config, on_change, test), test


async def test_camera_that_fails_mid_meeting_sends_the_slate_and_comes_back(tmp_path: Path) -> None:
    changes: list[bool] = []
    source, test = _test_source(
        _config(tmp_path, devices={"retry_seconds": 0.2}), on_change=lambda: changes.append(True)
    )
    track = source.video
    first = [await track.recv() for _ in range(3)]
    assert track.ok
    assert read_code(_decode_vp8(first)[0]) == room_code("tdp-01")

    test.faults.broken.add("camera")  # the camera raises on its next read
    slate = [await track.recv() for _ in range(3)]
    assert not track.ok
    assert "bị rút" in (track.problem or "")
    picture = _decode_vp8(slate)[0]  # the slate starts with a keyframe: decodable on its own
    assert read_code(picture) is None
    assert is_slate(picture)

    test.faults.broken.discard("camera")
    await asyncio.sleep(0.25)  # the retry interval
    back = [await track.recv() for _ in range(3)]
    assert track.ok
    assert read_code(_decode_vp8(back)[0]) == room_code("tdp-01")
    assert len(changes) >= 3
    timestamps = [p.pts for p in first + slate + back]
    assert timestamps == sorted(timestamps)  # one continuous stream for the sender


async def test_a_configured_camera_that_does_not_exist_gives_the_slate(tmp_path: Path) -> None:
    source, _ = _test_source(_config(tmp_path, devices={"camera": "/dev/video-khong-co"}))
    packet = await source.video.recv()
    assert not source.video.ok
    assert "không tồn tại" in (source.video.problem or "")
    assert isinstance(packet, Packet)
    assert is_slate(_decode_vp8([packet])[0])
    assert SLATE_CODE == 0


async def test_the_devices_are_looked_at_even_without_a_slate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A room that cannot draw its slate (its font missing) still opens and reports its devices."""

    def no_font(*_: Any) -> list[bytes]:
        raise RuntimeError("no font for the slate; install the Debian package fonts-dejavu-core")

    monkeypatch.setattr("node_agent.sources._slate_packets", no_font)
    changed = asyncio.Event()
    config = _config(tmp_path, test_source={"enabled": False}, devices={"camera": "/dev/video-khong-co"})
    source = RoomSource(config, changed.set)  # told when a device's state changes
    stop = asyncio.Event()
    running = asyncio.create_task(source.run(stop))
    try:
        await asyncio.wait_for(changed.wait(), timeout=5)
    finally:
        stop.set()
        await running
    assert "không tồn tại" in (source.video.problem or ""), source.video.problem


async def test_a_raising_device_input_is_caught(tmp_path: Path) -> None:
    class Broken:
        paced = False

        def read(self) -> Any:
            raise RuntimeError("VIDIOC_DQBUF: No such device")

        def alive(self) -> bool:
            return True

        def keyframe(self) -> bool:
            return False

        def level(self) -> int | None:
            return None

        def close(self) -> None:
            pass

    track = FallbackTrack("audio", "microphone", Broken, lambda: [b"\xf8\xff\xfe"], 0.02, 48000, 60, lambda: None)
    packet = await track.recv()
    assert bytes(packet) == b"\xf8\xff\xfe"  # the silence loop
    assert not track.ok
    assert "No such device" in (track.problem or "")


def test_a_device_loop_refuses_to_open_while_unplugged() -> None:
    faults = Faults()
    faults.broken.add("camera")
    with pytest.raises(DeviceError):
        PacketLoop("camera", [b"x"], faults=faults)


@pytest.fixture
def alsa_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ALSA configuration with a speaker that writes what it plays to a file (no sound card needed)."""
    (tmp_path / ".asoundrc").write_text(ASOUNDRC % (tmp_path / "speaker.raw"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path / "speaker.raw"


def test_speaker_plays_the_mix_through_alsa(alsa_home: Path) -> None:
    """Run in a subprocess: ALSA reads its configuration once per process."""
    import subprocess
    import sys

    script = """
import time, numpy as np, av
from node_agent.devices import list_devices
from node_agent.sound import Speaker
found = list_devices()
assert "phonghop_file" in [s.name for s in found.speakers], found
speaker = Speaker("phonghop_file", 1.0, lambda: None)
speaker.check()
assert speaker.ok, speaker.problem
t = np.arange(48000) / 48000
for slot, hz in (("chair_audio", 440), ("floor_audio", 1000)):
    mono = (3000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate = 48000
    speaker.feed(slot, frame)
for _ in range(10):
    speaker._output.write(speaker.mix())
    time.sleep(0.02)
time.sleep(0.5)
speaker._output.close()
"""
    result = subprocess.run([sys.executable, "-c", script], env=os.environ, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # ALSA's null device has no clock, so the file is mostly the silence PortAudio played while idle.
    played = np.frombuffer(alsa_home.read_bytes(), dtype=np.int16).reshape(-1, 2)[:, 0].astype(np.float32)
    sound = played[np.nonzero(played)[0][0] :][:9600]
    assert sound.size == 9600
    spectrum = np.abs(np.fft.rfft(sound * np.hanning(sound.size)))
    hz = np.fft.rfftfreq(sound.size, 1 / 48000)
    first = hz[np.argmax(spectrum)]
    second = hz[np.argmax(np.where(np.abs(hz - first) > 50, spectrum, 0))]
    peaks = sorted([float(first), float(second)])
    assert abs(peaks[0] - 440) < 10, peaks  # the chair's slot...
    assert abs(peaks[1] - 1000) < 10, peaks  # ...and the floor's, mixed


def test_a_missing_speaker_is_reported_and_retried() -> None:
    speaker = Speaker("khong-co-loa", 60, lambda: None)
    speaker.check()
    assert not speaker.ok
    assert speaker.problem
    with pytest.raises(DeviceError):
        SoundOutput("khong-co-loa")


def test_devices_lists_what_there_is() -> None:
    found = list_devices()
    assert isinstance(found.cameras, list)
    if not found.cameras:
        assert any("camera" in p for p in found.problems)


async def test_raw_pictures_go_to_the_encoder_and_it_restarts_with_a_keyframe(tmp_path: Path) -> None:
    source, test = _test_source(
        _config(
            tmp_path, devices={"camera": "test-raw", "camera_width": 320, "camera_height": 180, "retry_seconds": 0.1}
        )
    )
    keyframes: list[bool] = []
    source.video.encoder_keyframe = lambda: keyframes.append(True)
    frame = await source.video.recv()
    assert isinstance(frame, av.VideoFrame)
    assert (frame.width, frame.height) == (320, 180)
    assert read_code(frame.to_ndarray(format="gray")) == room_code("tdp-01")
    test.faults.broken.add("camera")
    assert isinstance(await source.video.recv(), Packet)  # the pre-encoded slate
    test.faults.broken.discard("camera")
    await asyncio.sleep(0.15)
    before = len(keyframes)
    assert isinstance(await source.video.recv(), av.VideoFrame)
    assert len(keyframes) > before  # the encoder must not continue from a picture the receiver never had


@pytest.mark.parametrize("bitrate", [16_000, 32_000])
def test_a_rooms_sound_is_voice_sized_opus(bitrate: int) -> None:
    """Raw microphone frames (stereo, as a sound card gives them) and the looped test tone both become one
    channel at about the configured bitrate, not aiortc's 96 kbit/s stereo."""
    voice = Voice(bitrate=bitrate)
    encoder = VoiceOpusEncoder(voice)
    packets: list[bytes] = []
    for start in range(0, 48000, 960):  # one second
        t = np.arange(start, start + 960) / 48000
        mono = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, start, fractions.Fraction(1, 48000)
        packets += encoder.encode(frame)[0]
    tone = encode_opus_tone(440, voice)
    for sound in (packets, tone):
        assert len(sound) >= 45
        assert not any(packet[0] & 0x04 for packet in sound)  # the TOC byte's stereo bit
        assert sum(map(len, sound)) * 8 / (len(sound) / 50) < 1.3 * bitrate
