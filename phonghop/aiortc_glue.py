"""Every reach into aiortc's private parts, in one place (aiortc is pinned to 1.16.0).

aiortc decodes every received track and encodes every sent one. A forwarding
unit needs neither: it taps received RTP packets before the jitter buffer and
writes ready-made RTP packets into senders. The hooks below do exactly that
and nothing more; ``tests/test_aiortc_glue.py`` checks them against the pinned
version, and importing this module with another version fails loudly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from struct import pack_into
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc import clock as aiortc_clock
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket

log = logging.getLogger(__name__)

PINNED = "1.16.0"
if version("aiortc") != PINNED:
    raise ImportError(f"phonghop.aiortc_glue is written for aiortc {PINNED}, found {version('aiortc')}")

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


def watch_rtcp(endpoint: RTCRtpReceiver | RTCRtpSender, heard: Callable[[], None]) -> None:
    """Call ``heard`` for every RTCP packet routed to this receiver or sender.

    Sender reports keep coming while a room sends no media (and receiver
    reports while it receives some), so this tells a live peer from a dead one.
    """
    original = endpoint._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        heard()
        await original(packet)

    endpoint._handle_rtcp_packet = handle  # type: ignore[method-assign]


async def request_keyframe(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send a PLI for ``media_ssrc`` upstream, to the publisher."""
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


def set_sending(sender: RTCRtpSender, enabled: bool) -> None:
    """Pause or resume a track-driven sender; while paused it drops frames without encoding them."""
    sender._enabled = enabled


class PacketSender:
    """Drives an RTCRtpSender with RTP packets made elsewhere, instead of frames from a track.

    The sender keeps its SSRC, RTCP sender reports, NACK retransmissions and
    statistics; only its encode loop is replaced by an idle task.
    """

    def __init__(self, sender: RTCRtpSender, keyframe_requested: Callable[[], None]) -> None:
        self.sender = sender
        self.payload_type = 0
        self.clock_rate = 90000
        self.codec_name = ""
        sender._run_rtp = self._idle  # type: ignore[method-assign]
        on_keyframe_request(sender, keyframe_requested)
        self._history: dict[int, RtpPacket] = sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]
        self._extensions_map = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        self._header: bytes | None = None
        self._ssrc = 0
        self._mid: str | None = None
        self._report_clock = 0.0

    @property
    def ssrc(self) -> int:
        return int(self.sender._ssrc)

    async def _idle(self, codec: RTCRtpCodecParameters) -> None:
        sender = self.sender
        # The RTP header is the same for every packet but for marker, sequence number and
        # timestamp: serialize it once (with the MID extension) and patch those fields.
        self._ssrc = sender._ssrc
        self._mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        self.payload_type = int(codec.payloadType or 0)
        template = RtpPacket(payload_type=self.payload_type, ssrc=self._ssrc)
        template.extensions.mid = self._mid
        self._header = template.serialize(self._extensions_map)
        self.clock_rate = codec.clockRate
        self.codec_name = codec.name
        sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        finally:
            sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

    async def send(self, sequence_number: int, timestamp: int, marker: int, payload: bytes) -> int:
        """Send one packet with this sender's SSRC, payload type and MID; returns the bytes sent."""
        header = self._header
        if header is None:
            return 0
        sender = self.sender
        data = bytearray(header)
        data[1] = (marker << 7) | self.payload_type
        pack_into("!HI", data, 2, sequence_number, timestamp)
        data += payload
        packet = RtpPacket(self.payload_type, marker, sequence_number, timestamp, self._ssrc, payload)
        packet.extensions.mid = self._mid
        self._history[sequence_number % RTP_HISTORY_SIZE] = packet  # for NACK retransmissions
        try:
            await sender.transport._send_rtp(bytes(data))
        except ConnectionError:
            return 0  # this subscriber's transport is gone; its peer will be discarded
        # What the next RTCP sender report says about this stream.
        now = time.monotonic()
        if now - self._report_clock >= 0.05:
            self._report_clock = now
            sender._RTCRtpSender__ntp_timestamp = aiortc_clock.current_ntp_time()  # type: ignore[attr-defined]
            sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count += len(payload)  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += 1  # type: ignore[attr-defined]
        return len(data)
