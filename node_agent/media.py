"""The room's media: one WebRTC peer to the coordinator per meeting, renewed when it fails.

The room sends its camera and microphone (or the test source) and receives
three fixed slots: the program picture, the chair's sound and the floor's
sound. A simulated room only counts what it receives; a room that decodes
hands the pictures and sound to its sinks (the TV, the speaker, and in a
simulated room that decodes, the test source's code reader).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from aiortc import RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket
from av import AudioFrame, VideoFrame
from pydantic import BaseModel

from node_agent.config import Voice
from node_agent.encoding import PausableTrack, VoiceOpusEncoder
from node_agent.room import Room
from node_agent.sources import LowerPicture
from phonghop.aiortc_glue.rtcp import TrackReports
from phonghop.aiortc_glue.tracks import (
    FixedRateVp8Encoder,
    decode_from_keyframes,
    force_keyframe,
    on_keyframe_request,
    set_sending,
    stamp_audio_level,
    tap_receiver,
    use_encoder,
)
from phonghop.dialing import NegotiationFailed, negotiate
from phonghop.protocol import Answer, MediaStatus, Publish
from phonghop.webrtc import peer_connection, prefer

log = logging.getLogger(__name__)

SLOTS = ("program", "chair_audio", "floor_audio")
ANSWER_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
SILENCE_TIMEOUT = 5.0  # nothing at all from the coordinator (RTP or RTCP) for this long: the peer is dead
REFUSED_RETRY = 10.0  # after the coordinator refused an offer


@dataclass
class SlotState:
    packets: int = 0
    last_packet: float = 0.0

    def received(self) -> None:
        self.packets += 1
        self.last_packet = time.monotonic()


class Source(Protocol):
    """What a room sends: its camera and microphone tracks (a ``RoomSource``; a ``TestSource`` in benchmarks)."""

    @property
    def video(self) -> MediaStreamTrack: ...

    @property
    def audio(self) -> MediaStreamTrack: ...

    def request_keyframe(self) -> None: ...

    def request_low_keyframe(self) -> None: ...

    def pause(self, video: bool, audio: bool) -> None: ...

    def use_encoder(self, keyframe: Callable[[], None]) -> None:
        """How to make the sender's encoder start a keyframe, for a source that sends raw pictures."""
        ...

    def audio_level(self) -> int: ...

    @property
    def low(self) -> PausableTrack | None:
        """The picture in a lower quality, sent on a fourth m-line for subscribers on weak links."""
        ...

    @property
    def voice(self) -> Voice:
        """How raw sound is encoded."""
        ...


VideoSink = Callable[[str, VideoFrame], None]
AudioSink = Callable[[str, AudioFrame], None]


@dataclass
class Sinks:
    """Where decoded media goes, per slot name (the TV, the speaker, the test source's code reader)."""

    video: list[VideoSink] = field(default_factory=list)
    audio: list[AudioSink] = field(default_factory=list)


class MediaPeer:
    """One RTCPeerConnection for one meeting occurrence."""

    def __init__(self, occurrence: int, source: Source, decode: bool, sinks: Sinks | None = None) -> None:
        self.occurrence = occurrence
        self.decode = decode
        self.sinks = sinks or Sinks()
        self.slots = {name: SlotState() for name in SLOTS}
        self.created = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self._rx_packets = 0
        self._rx_checked = time.monotonic()
        self.pc = peer_connection()
        video = self.pc.addTransceiver(source.video, direction="sendrecv")
        audio = self.pc.addTransceiver(source.audio, direction="sendrecv")
        self.video_sender, self.audio_sender = video.sender, audio.sender
        self.source = source
        self.sending_video = True
        self.pc.addTransceiver("audio", direction="recvonly")
        self.low_sender = None
        if source.low is not None:
            assert isinstance(source.low, MediaStreamTrack)
            low = self.pc.addTransceiver(source.low, direction="sendonly")
            prefer(low, "video", "video/VP8")
            on_keyframe_request(low.sender, source.request_low_keyframe)
            self.low_sender = low.sender
            if isinstance(source.low, LowerPicture):  # raw pictures are encoded at the lower quality's rate
                use_encoder(low.sender, FixedRateVp8Encoder(source.low.bitrate))
                source.low.encoder_keyframe = partial(force_keyframe, low.sender)
        prefer(video, "video", "video/VP8")
        on_keyframe_request(video.sender, source.request_keyframe)
        sender = video.sender
        source.use_encoder(lambda: force_keyframe(sender))
        stamp_audio_level(audio.sender, source.audio_level)
        use_encoder(audio.sender, VoiceOpusEncoder(source.voice))
        self.reports = TrackReports(self.pc)  # one RTCP report a second for the whole peer
        self.pc.on("track", self._on_track)

    def publish(self, video: bool, audio: bool) -> None:
        if video and not self.sending_video:
            self.source.request_keyframe()  # start again with a whole picture
        self.sending_video = video
        set_sending(self.video_sender, video)
        if self.low_sender is not None:
            set_sending(self.low_sender, video)
        set_sending(self.audio_sender, audio)
        self.source.pause(not video, not audio)

    @property
    def state(self) -> str:
        return str(self.pc.connectionState)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.reports.reporting.start()

    def _slot_of(self, receiver: RTCRtpReceiver) -> str:
        for index, transceiver in enumerate(self.pc.getTransceivers()):
            if transceiver.receiver is receiver:
                return SLOTS[index] if index < len(SLOTS) else f"extra{index}"
        return "unknown"

    def _on_track(self, track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        name = self._slot_of(receiver)
        slot = self.slots.setdefault(name, SlotState())
        if self.decode:
            if track.kind == "video":
                decode_from_keyframes(receiver)
            reader = self._read_video if track.kind == "video" else self._read_audio
            self._tasks.append(asyncio.create_task(reader(track, slot, name), name=f"read-{name}"))
        else:

            async def count(_: RtpPacket) -> None:
                slot.received()

            tap_receiver(receiver, count)

    async def _read_video(self, track: MediaStreamTrack, slot: SlotState, name: str) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    slot.received()
                    for sink in self.sinks.video:
                        sink(name, frame)

    async def _read_audio(self, track: MediaStreamTrack, slot: SlotState, name: str) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, AudioFrame):
                    slot.received()
                    for sink in self.sinks.audio:
                        sink(name, frame)

    async def alive(self) -> str | None:
        """None while healthy; otherwise why this peer should be replaced."""
        now = time.monotonic()
        if self.state in ("failed", "closed"):
            return f"connection {self.state}"
        if self.state != "connected":
            return f"not connected after {CONNECT_TIMEOUT:.0f} s" if now - self.created > CONNECT_TIMEOUT else None
        received = sum(
            getattr(stat, "packetsReceived", 0) or 0
            for stat in (await self.pc.getStats()).values()
            if stat.type == "transport"
        )
        if received != self._rx_packets:
            self._rx_packets, self._rx_checked = received, now
        elif now - self._rx_checked > SILENCE_TIMEOUT:
            return f"nothing received for {SILENCE_TIMEOUT:.0f} s"
        return None

    def receiving(self) -> bool:
        now = time.monotonic()
        return any(now - slot.last_packet < 2.0 for slot in self.slots.values())

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.reports.reporting.stop()
        await self.pc.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await task


Send = Callable[[BaseModel], Awaitable[bool]]


class MediaManager:
    """Keeps exactly one healthy peer while the room has a meeting, none otherwise."""

    def __init__(self, room: Room, source: Source, decode: bool, send: Send, sinks: Sinks | None = None) -> None:
        self.room = room
        self.sinks = sinks
        self.source = source
        self.decode = decode
        self.send = send
        self.peer: MediaPeer | None = None
        self._answer: asyncio.Future[str] | None = None
        self._wake = asyncio.Event()
        self._last_status: MediaStatus | None = None
        # No picture until the router asks for it (it always does when the peer joins): a room that
        # nobody watches must not spend its uplink in the moment before that message arrives.
        self._publish = Publish(video=False, audio=True)
        self._stale = False
        # Offer only after this control session's join was obeyed: the coordinator
        # accepts offers from rooms in the meeting, and learns that from the ack.
        self._awaiting_join = True
        self._not_before = 0.0  # after a refused offer, wait before offering again

    def poke(self) -> None:
        self._wake.set()

    def on_answer(self, answer: Answer) -> None:
        if (
            self._answer is not None
            and not self._answer.done()
            and self.peer
            and answer.occurrence == self.peer.occurrence
        ):
            self._answer.set_result(answer.sdp)

    def on_reconnect(self) -> None:
        """The control channel was re-established: the coordinator has dropped our old peer."""
        self._stale = self.peer is not None
        self._awaiting_join = True
        self.poke()

    def on_duty(self) -> None:
        """A join or leave was obeyed (and acknowledged); the room may offer now."""
        self._awaiting_join = False
        self.poke()

    def on_publish(self, publish: Publish) -> None:
        """The coordinator says what of ours anyone receives; send only that."""
        if publish != self._publish:
            log.info("media: sending %s", ", ".join(k for k in ("video", "audio") if getattr(publish, k)) or "nothing")
        self._publish = publish
        if self.peer is not None:
            self.peer.publish(publish.video, publish.audio)

    def on_refusal(self, message: str) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(RuntimeError(message))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._reconcile()
                await self._report()
            except Exception:
                log.exception("media: unexpected error; trying again")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)
        await self._drop("agent stopping")

    async def _drop(self, reason: str) -> None:
        if self.peer is not None:
            peer, self.peer = self.peer, None
            log.info("media: closing peer for occurrence %s (%s)", peer.occurrence, reason)
            await peer.close()
            self.poke()

    async def _reconcile(self) -> None:
        meeting = self.room.meeting
        if meeting is None:
            await self._drop("left the meeting")
            return
        if self.peer is not None and self.peer.occurrence != meeting.occurrence:
            await self._drop("another meeting")
        if self._stale:
            self._stale = False
            await self._drop("control channel reconnected")
        if self.peer is not None:
            reason = await self.peer.alive()
            if reason is not None:
                log.warning("media: peer unhealthy (%s); opening a new one", reason)
                await self._drop(reason)
        if (
            self.peer is None
            and self.room.connected
            and not self._awaiting_join
            and time.monotonic() >= self._not_before
        ):
            await self._open(meeting.occurrence)

    async def _open(self, occurrence: int) -> None:
        peer = MediaPeer(occurrence, self.source, self.decode, self.sinks)
        peer.publish(self._publish.video, self._publish.audio)
        self.peer = peer
        self._answer = asyncio.get_running_loop().create_future()
        try:
            answer = await negotiate(self.send, occurrence, await peer.offer(), self._answer, ANSWER_TIMEOUT)
        except NegotiationFailed as exc:
            if exc.refusal:
                log.error(
                    "media: coordinator refused the offer: %s; trying again in %.0f s", exc.refusal, REFUSED_RETRY
                )
                self._not_before = time.monotonic() + REFUSED_RETRY
            await self._drop(exc.reason)
            return
        await peer.accept(answer)
        log.info("media: peer for occurrence %s negotiated", occurrence)

    def status(self) -> MediaStatus:
        return MediaStatus(receiving=self.peer is not None and self.peer.receiving())

    async def _report(self) -> None:
        status = self.status()
        if status != self._last_status and await self.send(status):
            self._last_status = status
