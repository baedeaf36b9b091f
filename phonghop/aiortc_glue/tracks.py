"""Hooks into aiortc's tracks for a room's agent and the benchmarks' load generator.

A room that only counts what it receives taps packets before the jitter
buffer (nothing is assembled or decoded); a room sending pre-encoded media
gives it an audio level; the agent pauses senders and forces keyframes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.base import Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from phonghop.vp8 import inspect

log = logging.getLogger(__name__)

PacketHandler = Callable[[RtpPacket], Awaitable[None]]


class _PacketSink:
    """Takes the place of a receiver's jitter buffer: no frame is assembled, so none is decoded."""

    __slots__ = ("packet",)

    def __init__(self) -> None:
        self.packet: RtpPacket | None = None

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        self.packet = packet
        return False, None


def tap_receiver(receiver: RTCRtpReceiver, on_packet: PacketHandler) -> None:
    """Hand every valid RTP packet to ``on_packet`` instead of the decoder.

    The receiver keeps doing its RTCP work (receiver reports, NACKs, REMB, RTX
    unwrapping, statistics). Call it from a synchronous ``on("track")`` handler,
    before the first packet arrives.
    """
    sink = _PacketSink()
    receiver._RTCRtpReceiver__jitter_buffer = sink  # type: ignore[attr-defined]
    original = receiver._handle_rtp_packet

    async def handle(packet: RtpPacket, arrival_time_ms: int) -> None:
        await original(packet, arrival_time_ms)
        taken, sink.packet = sink.packet, None
        if taken is not None:
            try:
                await on_packet(taken)
            except Exception:
                # An exception here would end the receiving transport's loop and
                # with it this peer: whatever went wrong downstream, keep receiving.
                log.exception("packet handler failed; packet dropped")

    receiver._handle_rtp_packet = handle  # type: ignore[method-assign]


async def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI for ``media_ssrc`` from a room's receiver (a room that lost its picture asks again)."""
    await receiver._send_rtcp_pli(media_ssrc)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` when the remote peer sends PLI or FIR for this sender."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


def force_keyframe(sender: RTCRtpSender) -> None:
    """Make the sender's encoder produce a keyframe next (raw frames only; packets pass through)."""
    sender._RTCRtpSender__force_keyframe = True  # type: ignore[attr-defined]


def stamp_audio_level(sender: RTCRtpSender, level: Callable[[], int]) -> None:
    """Give pre-encoded audio an audio-level header (dBov, -127..0), as aiortc does for raw audio."""
    original = sender._next_encoded_frame

    async def next_frame(codec: RTCRtpCodecParameters) -> Any:
        frame = await original(codec)
        if frame is not None and frame.audio_level is None:
            frame.audio_level = level()
        return frame

    sender._next_encoded_frame = next_frame  # type: ignore[method-assign]


def use_encoder(sender: RTCRtpSender, encoder: Encoder) -> None:
    """The sender encodes raw frames (and packs pre-encoded ones) with ``encoder`` instead of its default."""
    sender._RTCRtpSender__encoder = encoder  # type: ignore[attr-defined]


class FixedRateVp8Encoder(Vp8Encoder):
    """aiortc's VP8 encoder at one bitrate: REMB does not move it, and it may go under aiortc's floor of
    250 kbit/s (a room's lower-quality picture is about 150)."""

    def __init__(self, bitrate: int) -> None:
        super().__init__()
        self._Vp8Encoder__target_bitrate = bitrate

    @property
    def target_bitrate(self) -> int:
        return int(self._Vp8Encoder__target_bitrate)

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        pass  # a receiver's estimate: the lower quality stays what it is


class KeyframeJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, but a whole keyframe is decoded even while older packets are missing.

    aiortc's buffer hands out frames in order only: a packet lost for good (a
    retransmission lost too, on a congested link) holds back everything after
    it until 512 packets later, half a minute of a 150 kbit/s picture. A keyframe
    needs nothing before it, so the packets before its first one are dropped.
    """

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)
        origin = self._origin
        if (
            frame is None
            and origin is not None
            and origin != packet.sequence_number
            and inspect(packet.payload).keyframe
        ):
            self.remove(uint16_add(packet.sequence_number, -origin))
            frame = self._remove_frame(packet.sequence_number)
        return pli, frame


def decode_from_keyframes(receiver: RTCRtpReceiver) -> None:
    """A video receiver that decodes skips to a keyframe rather than wait for packets lost for good."""
    receiver._RTCRtpReceiver__jitter_buffer = KeyframeJitterBuffer(capacity=512, is_video=True)  # type: ignore[attr-defined]


def set_sending(sender: RTCRtpSender, enabled: bool) -> None:
    """Pause or resume a track-driven sender; while paused it drops frames without encoding them."""
    sender._enabled = enabled
