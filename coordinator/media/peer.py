"""One room's WebRTC peer on the coordinator: checks the offer, answers, wires packets.

The room offers three m-lines in this order: video (sendrecv: its camera and
the program picture), audio (sendrecv: its microphone and the chair's sound)
and audio (recvonly: the floor's sound); a web page watching the meeting offers
the same three, receive-only. The glue's ForwardingPeer moves the packets:
received ones to the router as they arrive, the router's copies out through
the three slots' PacketSenders.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from aiortc import MediaStreamTrack, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription
from av.frame import Frame

from phonghop.aiortc_glue.forwarding import ForwardingPeer, Inbound, LinkStats, PacketSender, ask_for_voice
from phonghop.webrtc import peer_connection, prefer

log = logging.getLogger(__name__)

Layout = tuple[tuple[str, str, str], ...]  # (kind, direction the offer must have, slot) per m-line, in order
SLOT_LAYOUT: Layout = (
    ("video", "sendrecv", "program"),
    ("audio", "sendrecv", "chair_audio"),
    ("audio", "recvonly", "floor_audio"),
)
# A room's agent sends its picture in two qualities: the lower one on a fourth m-line, sent only. A guest's
# browser and a commune's uplink send one quality (the three m-lines above).
LOW_PICTURE = "low picture"
ROOM_LAYOUT: Layout = (*SLOT_LAYOUT, ("video", "sendonly", LOW_PICTURE))
LOW = "/low"  # a room's lower-quality picture enters the router as the source "<room>/low"


def low_of(source: str) -> str:
    return source + LOW


def sending_layout(sdp: str) -> Layout:
    """A sending participant's layout, by the offer's number of m-lines: a room's two pictures, or one
    (``check_offer`` explains any other mismatch)."""
    sections = sum(1 for line in sdp.splitlines() if line.startswith("m="))
    return SLOT_LAYOUT if sections == len(SLOT_LAYOUT) else ROOM_LAYOUT


# A web page watching the meeting (the console's live view): the three slots, received only.
VIEWER_LAYOUT: Layout = (
    ("video", "recvonly", "program"),
    ("audio", "recvonly", "chair_audio"),
    ("audio", "recvonly", "floor_audio"),
)
# The self-test's offer: its test picture and tone, both sent back.
ECHO_LAYOUT: Layout = (
    ("video", "sendrecv", "test picture"),
    ("audio", "sendrecv", "test tone"),
)
FORWARDED_CODECS = {"video": "VP8", "audio": "opus"}
# While nothing flows, the router reports to a room this often: nobody judges the link by them (a room
# watches its control channel and its media; a page, its WebSocket), so they only keep the path warm.
QUIET_REPORTS = 5.0


# A room's real offer is 4-5 KB (Chromium's, with every codec it has, about 8 KB); these caps leave room
# for that and keep one offer's parsing short (a 59 KB offer with 900 codec lines held the loop 1.6 s).
MAX_OFFER_BYTES = 24_000
MAX_OFFER_LINES = 600
MAX_CODECS_PER_SECTION = 64
MAX_CANDIDATES_PER_SECTION = 40


class OfferError(ValueError):
    """The room's offer cannot be used; the message tells the room's technician why."""


def _check_size(sdp: str) -> None:
    """The caps, counted on the text before any parsing."""
    size = len(sdp.encode("utf-8", "surrogatepass"))
    if size > MAX_OFFER_BYTES:
        raise OfferError(
            f"the offer has {size} bytes, over the limit of {MAX_OFFER_BYTES}; a room's offer is about 5 KB"
        )
    lines = sdp.splitlines()
    if len(lines) > MAX_OFFER_LINES:
        raise OfferError(f"the offer has {len(lines)} lines, over the limit of {MAX_OFFER_LINES}")
    section = -1
    codecs = candidates = 0
    for line in lines:
        if line.startswith("m="):
            section, codecs, candidates = section + 1, 0, 0
        elif line.startswith("a=rtpmap:"):
            codecs += 1
            if codecs > MAX_CODECS_PER_SECTION:
                raise OfferError(
                    f"media section {section} lists more than {MAX_CODECS_PER_SECTION} codecs (the limit); "
                    "offer only the codecs the room uses"
                )
        elif line.startswith("a=candidate:"):
            candidates += 1
            if candidates > MAX_CANDIDATES_PER_SECTION:
                raise OfferError(
                    f"media section {section} lists more than {MAX_CANDIDATES_PER_SECTION} ICE candidates (the limit)"
                )


def check_offer(sdp: str, layout: Layout = SLOT_LAYOUT) -> None:
    """Refuse offers the router cannot serve, with a reason, before aiortc sees them."""
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError("the offer is not SDP (it does not start with 'v=0'); send pc.localDescription.sdp")
    _check_size(sdp)
    try:
        session = SessionDescription.parse(sdp)
    except Exception as exc:
        raise OfferError(f"the SDP offer does not parse ({exc.__class__.__name__}: {exc})") from exc
    media = session.media
    if len(media) != len(layout):
        kinds = ", ".join(f"{m.kind}/{m.direction}" for m in media) or "none"
        wanted = ", ".join(f"{kind} ({direction})" for kind, direction, _ in layout)
        raise OfferError(f"the offer has {len(media)} media sections ({kinds}); offer {wanted} in that order")
    for index, (m, (kind, direction, slot)) in enumerate(zip(media, layout, strict=True)):
        if m.kind != kind or m.direction != direction:
            raise OfferError(
                f"media section {index} is {m.kind}/{m.direction}; the {slot} slot needs {kind}/{direction}"
            )
        names = {codec.name.lower() for codec in m.rtp.codecs}
        wanted_codec = FORWARDED_CODECS[kind]
        if wanted_codec.lower() not in names:
            raise OfferError(
                f"media section {index} ({kind}) offers {', '.join(sorted(names)) or 'no codec'}; "
                f"the router forwards {wanted_codec} only"
            )
        if m.dtls is None or m.ice is None:
            raise OfferError(f"media section {index} has no ICE or DTLS parameters")


class Placeholder(MediaStreamTrack):
    """Gives a sender its kind in the SDP; never read, since PacketSender drives the sender."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Frame:
        raise MediaStreamError("the router sends packets, not frames")


PacketHandler = Callable[[str, str, RtpPacket], None]


class RoomPeer:
    def __init__(
        self,
        room: str,
        occurrence: int,
        on_packet: PacketHandler,
        on_keyframe_request: Callable[[str, str], None],
        on_closed: Callable[[RoomPeer], None],
        layout: Layout = SLOT_LAYOUT,
        on_connected: Callable[[RoomPeer], None] = lambda peer: None,
    ) -> None:
        self.room = room
        self.layout = layout
        self.occurrence = occurrence
        self.pc = peer_connection()
        self.forwarding = ForwardingPeer(self.pc, self._heard, QUIET_REPORTS)
        self.senders: dict[str, PacketSender] = {}
        self.receivers: dict[tuple[str, str], Inbound] = {}  # (source, kind): the room, or its lower picture
        self.remote_ssrc: dict[tuple[str, str], int] = {}
        self.layered = any(slot == LOW_PICTURE for _, _, slot in layout)
        self.last_heard = 0.0
        self._on_packet = on_packet
        self._on_keyframe_request = on_keyframe_request
        self._on_closed = on_closed
        self._on_connected = on_connected
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    @property
    def quality(self) -> LinkStats:
        return self.forwarding.link

    @property
    def connected(self) -> bool:
        return self.pc.connectionState == "connected"

    def flowing(self, within: float = 3.0) -> bool:
        """Connected, and heard from lately (media, or RTCP reports while it sends nothing)."""
        return self.connected and time.monotonic() - self.last_heard < within

    def _heard(self) -> None:
        self.last_heard = time.monotonic()

    async def answer(self, offer_sdp: str) -> str:
        check_offer(offer_sdp, self.layout)
        # The answer names only what the router forwards, whatever order the offer lists its codecs in
        # (Safari puts H264 first): the slots' transceivers exist before the offer is applied, each
        # preferring its forwarded codec, and take the offer's m-lines in order.
        for kind, _, _ in self.layout:
            prefer(self.pc.addTransceiver(kind, direction="recvonly"), kind, f"{kind}/{FORWARDED_CODECS[kind]}")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:
            raise OfferError(f"the offer was refused: {exc}") from exc
        for transceiver, (kind, direction, slot) in zip(self.pc.getTransceivers(), self.layout, strict=True):
            if direction == "sendonly":
                continue  # the room only sends on it: its lower-quality picture
            sender = self.pc.addTrack(Placeholder(kind))
            assert sender is transceiver.sender
            self.senders[slot] = self.forwarding.add_sender(sender, partial(self._on_keyframe_request, self.room, slot))
        ask_for_voice(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.forwarding.start()
        return str(self.pc.localDescription.sdp)

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceivers = self.pc.getTransceivers()
        index = next(i for i, t in enumerate(transceivers) if t.receiver.track is track)
        kind, on_packet, remote_ssrc = track.kind, self._on_packet, self.remote_ssrc
        source = low_of(self.room) if self.layout[index][2] == LOW_PICTURE else self.room
        key = (source, kind)

        def handle(packet: RtpPacket) -> None:
            remote_ssrc[key] = packet.ssrc
            on_packet(source, kind, packet)

        self.receivers[key] = self.forwarding.add_receiver(transceivers[index].receiver, handle)

    def request_keyframe(self, source: str | None = None) -> None:
        """A PLI for the room's picture (``source``: the room, the default, or its lower picture)."""
        key = (source or self.room, "video")
        inbound, ssrc = self.receivers.get(key), self.remote_ssrc.get(key)
        if inbound is not None and ssrc is not None:
            inbound.request_keyframe(ssrc)

    def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("room %s: media peer %s", self.room, state)
        if state == "connected":
            self._on_connected(self)
        elif state in ("failed", "closed"):
            self._on_closed(self)

    async def close(self) -> None:
        await self.forwarding.close()
