"""The router's pieces without a network: VP8 descriptors, slot rewriting, policy, speaker, keyframes."""

from __future__ import annotations

import asyncio
import itertools

from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtpPacket

from coordinator.media.policy import Slots, slots_for, talker
from coordinator.media.rewriter import SlotStream
from coordinator.media.router import KeyframeGate
from coordinator.media.speaker import HOLD_SECONDS, ActiveSpeaker
from phonghop.vp8 import inspect


def _vp8(picture_id: int, start: bool, keyframe: bool) -> bytes:
    descriptor = bytes(VpxPayloadDescriptor(partition_start=int(start), partition_id=0, picture_id=picture_id))
    # First byte of a VP8 frame header: bit 0 is 0 for a keyframe.
    return descriptor + bytes([0x00 if keyframe else 0x01]) + b"\x9d\x01\x2a" + b"\x00" * 20


def _packet(seq: int, ts: int, payload: bytes, marker: int = 1) -> RtpPacket:
    return RtpPacket(payload_type=97, marker=marker, sequence_number=seq, timestamp=ts, ssrc=1234, payload=payload)


def test_inspect_reads_what_aiortc_writes() -> None:
    key = inspect(_vp8(4321, start=True, keyframe=True))
    assert (key.frame_start, key.keyframe, key.picture_id) == (True, True, 4321)
    delta = inspect(_vp8(4322, start=True, keyframe=False))
    assert (delta.frame_start, delta.keyframe) == (True, False)
    middle = inspect(_vp8(4322, start=False, keyframe=True))
    assert (middle.frame_start, middle.keyframe) == (False, False)
    assert not inspect(b"").keyframe
    assert not inspect(b"\x90").keyframe  # extension bit set but truncated


class _Sink:
    def __init__(self) -> None:
        self.sent: list[tuple[int, int, bytes]] = []

    def __call__(self, seq: int, ts: int, marker: int, payload: bytes) -> int:
        self.sent.append((seq, ts, payload))
        return len(payload)


def test_video_slot_waits_for_a_keyframe_and_stays_continuous_across_a_switch() -> None:
    sink = _Sink()
    slot = SlotStream("tdp-01", "program", "video", 90000, sink)
    assert slot.switch("ubnd") is True
    # Deltas before the first keyframe are held back.
    assert slot.forward(_packet(100, 9000, _vp8(10, True, False)), inspect(_vp8(10, True, False)), "ubnd") == 0
    for seq, pic, key in ((101, 11, True), (102, 12, False)):
        payload = _vp8(pic, True, key)
        slot.forward(_packet(seq, 9000 * seq, payload), inspect(payload), "ubnd")
    assert [s for s, _, _ in sink.sent] == [101, 102]

    # Switch to another room whose numbering is unrelated: the old picture flows until the new one's keyframe.
    assert slot.switch("tdp-02") is True
    other = _vp8(30000, True, False)
    assert slot.forward(_packet(60000, 5, other), inspect(other), "tdp-02") == 0
    payload = _vp8(13, True, False)
    assert slot.forward(_packet(103, 9000 * 103, payload), inspect(payload), "ubnd") > 0
    for seq, pic, key in ((60001, 30001, True), (60002, 30002, False)):
        payload = _vp8(pic, True, key)
        slot.forward(_packet(seq, 5 + 6000 * (seq - 60000), payload), inspect(payload), "tdp-02")
    late = _vp8(14, True, False)
    assert slot.forward(_packet(104, 9000 * 104, late), inspect(late), "ubnd") == 0  # cut over: the old is gone
    seqs = [s for s, _, _ in sink.sent]
    assert seqs == [101, 102, 103, 104, 105]
    timestamps = [t for _, t, _ in sink.sent]
    assert all(b > a for a, b in itertools.pairwise(timestamps))
    picture_ids = [inspect(p).picture_id for _, _, p in sink.sent]
    assert picture_ids == [11, 12, 13, 14, 15]
    # A late packet from before the switch has no place in the stream.
    stale = _vp8(29999, True, False)
    assert slot.forward(_packet(59999, 1, stale), inspect(stale), "tdp-02") == 0


def test_audio_slot_switches_without_waiting() -> None:
    sink = _Sink()
    slot = SlotStream("tdp-01", "floor_audio", "audio", 48000, sink)
    assert slot.switch("tdp-02") is False
    slot.forward(_packet(7, 960, b"opus"), None, "tdp-02")
    slot.switch("tdp-03")
    slot.forward(_packet(50000, 123456, b"opus"), None, "tdp-03")
    assert [s for s, _, _ in sink.sent] == [7, 8]


def test_a_slot_with_one_source_for_hours_keeps_every_packet() -> None:
    """Sequence numbers wrap every 65 536 packets (22 minutes of audio): none of them may look stale."""
    sink = _Sink()
    slot = SlotStream("tdp-01", "program_audio", "audio", 48000, sink)
    slot.switch("ubnd")
    first = 65000
    for n in range(3 * 65536):
        slot.forward(_packet((first + n) & 0xFFFF, 960 * n, b"opus"), None, "ubnd")
    assert len(sink.sent) == 3 * 65536
    assert all(((b - a) & 0xFFFF) == 1 for (a, _, _), (b, _, _) in itertools.pairwise(sink.sent))
    # Still dropped: a packet from long before the newest one.
    assert slot.forward(_packet((first + 3 * 65536 - 0x2000) & 0xFFFF, 0, b"old"), None, "ubnd") == 0


def test_policy_never_sends_a_room_its_own_media() -> None:
    rooms = {"ubnd", "tdp-01", "tdp-02", "th-phong-son"}
    for speaking in (None, "tdp-02"):
        for room in rooms:
            slots = slots_for(room, "ubnd", speaking, rooms)
            assert room not in (slots.program, slots.chair_audio, slots.floor_audio)
    assert slots_for("tdp-01", "ubnd", None, rooms) == Slots("ubnd", "ubnd", None)
    assert slots_for("tdp-01", "ubnd", "tdp-02", rooms) == Slots("tdp-02", "ubnd", "tdp-02")
    assert slots_for("tdp-02", "ubnd", "tdp-02", rooms) == Slots("ubnd", "ubnd", None)
    assert slots_for("ubnd", "ubnd", "tdp-02", rooms) == Slots("tdp-02", None, "tdp-02")
    # The chair keeps seeing the last speaker after the floor is taken back.
    assert slots_for("ubnd", "ubnd", None, rooms, previous="th-phong-son").program == "th-phong-son"
    # A floor holder that is not publishing leaves the program on the chair.
    assert slots_for("tdp-01", "ubnd", "tdp-09", rooms).program == "ubnd"
    assert talker("presentation", "tdp-01", "tdp-02") == "tdp-01"
    assert talker("discussion", "tdp-01", "tdp-02") == "tdp-02"
    assert talker("discussion", "tdp-01", None) == "tdp-01"


def test_active_speaker_needs_to_be_louder_for_a_while() -> None:
    speaker = ActiveSpeaker()
    t = 0.0
    for _ in range(20):  # tdp-01 talks
        t += 0.02
        speaker.observe("tdp-01", 20, t)
    t += HOLD_SECONDS + 0.1
    speaker.observe("tdp-01", 20, t)
    assert speaker.current == "tdp-01"
    # A short cough from tdp-02 does not take over.
    for _ in range(10):
        t += 0.02
        speaker.observe("tdp-02", 5, t)
        speaker.observe("tdp-01", 90, t)
    assert speaker.current == "tdp-01"
    # Sustained speech from tdp-02 while tdp-01 is quiet does.
    changed = False
    for _ in range(200):
        t += 0.02
        speaker.observe("tdp-01", 110, t)
        changed |= speaker.observe("tdp-02", 15, t)
    assert changed
    assert speaker.current == "tdp-02"
    speaker.forget("tdp-02")
    assert speaker.current is None


async def test_keyframe_requests_are_rate_limited_and_coalesced() -> None:
    sent: list[float] = []

    def send() -> None:
        sent.append(asyncio.get_running_loop().time())

    gate = KeyframeGate(send, interval=0.2)
    for _ in range(10):
        gate.request()
    await asyncio.sleep(0.05)
    assert len(sent) == 1
    await asyncio.sleep(0.25)
    assert len(sent) == 2  # the nine extra requests became one, 0.2 s later
    assert sent[1] - sent[0] >= 0.19
    await asyncio.sleep(0.3)
    assert len(sent) == 2
