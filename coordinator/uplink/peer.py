"""The commune's one WebRTC peer in a province meeting: a room's three m-lines, packets both ways.

It offers what a room offers (video sendrecv, audio sendrecv, audio recvonly),
so the province routes a commune like any room. Nothing is decoded or
encoded: the glue's ForwardingPeer hands received packets to the commune's
router as they arrive, and what goes up (the picture and sound of one room of
the commune) is written into the two senders as ready-made packets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket

from coordinator.media.peer import SLOT_LAYOUT, Placeholder
from phonghop.aiortc_glue.forwarding import ForwardingPeer, Inbound, PacketSender
from phonghop.webrtc import peer_connection, prefer

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
SILENCE_TIMEOUT = 3.0  # nothing at all (RTP or RTCP) from the province for this long: the peer is dead
LIVE_WITHIN = 1.0  # the province's program counts as arriving while a packet came this recently

SlotPacket = Callable[[str, str, RtpPacket], None]  # slot, kind, packet


class UplinkPeer:
    def __init__(self, occurrence: int, on_packet: SlotPacket, on_keyframe_request: Callable[[], None]) -> None:
        self.occurrence = occurrence
        self.created = time.monotonic()
        self.last_media = 0.0
        self.last_heard = time.monotonic()
        self.pc = peer_connection()
        self.forwarding = ForwardingPeer(self.pc, self._heard)
        self.senders: dict[str, PacketSender] = {}
        self._on_packet = on_packet
        self._receivers: dict[str, tuple[Inbound, int]] = {}
        for kind, direction, _slot in SLOT_LAYOUT:
            if direction == "sendrecv":
                transceiver = self.pc.addTransceiver(Placeholder(kind), direction=direction)
                self.senders[kind] = self.forwarding.add_sender(
                    transceiver.sender, on_keyframe_request if kind == "video" else lambda: None
                )
            else:
                transceiver = self.pc.addTransceiver(kind, direction=direction)
            prefer(transceiver, kind, "video/VP8" if kind == "video" else "audio/opus")
        self.pc.on("track", self._on_track)

    def _heard(self) -> None:
        self.last_heard = time.monotonic()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.forwarding.start()

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceivers = self.pc.getTransceivers()
        index = next(i for i, t in enumerate(transceivers) if t.receiver.track is track)
        receiver, slot = transceivers[index].receiver, SLOT_LAYOUT[index][2]
        kind = track.kind

        def handle(packet: RtpPacket) -> None:
            self.last_media = time.monotonic()
            self._receivers[slot] = (inbound, packet.ssrc)
            self._on_packet(slot, kind, packet)

        inbound = self.forwarding.add_receiver(receiver, handle)

    def request_keyframe(self) -> None:
        """Ask the province for a keyframe of the program picture."""
        if "program" in self._receivers:
            inbound, ssrc = self._receivers["program"]
            inbound.request_keyframe(ssrc)

    def send(self, kind: str, sequence_number: int, timestamp: int, marker: int, payload: bytes) -> int:
        return self.senders[kind].send(sequence_number, timestamp, marker, payload)

    def live(self) -> bool:
        """The province's media is arriving now."""
        return self.pc.connectionState == "connected" and time.monotonic() - self.last_media < LIVE_WITHIN

    def dead(self) -> str | None:
        """None while the peer may still work; otherwise why it should be replaced."""
        state = self.pc.connectionState
        now = time.monotonic()
        if state in ("failed", "closed"):
            return f"connection {state}"
        if state != "connected":
            return f"not connected after {CONNECT_TIMEOUT:.0f} s" if now - self.created > CONNECT_TIMEOUT else None
        if now - self.last_heard > SILENCE_TIMEOUT:
            return f"nothing from the province for {SILENCE_TIMEOUT:.0f} s"
        return None

    async def close(self) -> None:
        await self.forwarding.close()
