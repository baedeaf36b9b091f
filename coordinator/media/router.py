"""The forwarding unit of one running meeting: rooms' peers, their slots, the fan-out table.

Nothing here decodes or encodes: packets from a publishing room go, rewritten
per subscriber, to the slots that currently show or play that room. The
fan-out table is rebuilt only when the routing changes (join, leave, floor,
speaker), so the per-packet path is a dictionary lookup and a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from aiortc.rtp import RtpPacket

from coordinator.media.budget import RESUME_BELOW, WIRE_OVERHEAD, ReceiveBudgets
from coordinator.media.peer import LOW, VIEWER_LAYOUT, Layout, RoomPeer, low_of, sending_layout
from coordinator.media.policy import Slots, slots_for, talker
from coordinator.media.quality import Qualities
from coordinator.media.relay import Relay
from coordinator.media.rewriter import SendPacket, SlotStream
from coordinator.media.speaker import ActiveSpeaker
from phonghop.vp8 import inspect

log = logging.getLogger(__name__)

KEYFRAME_INTERVAL = 1.0
MAX_PROBE_COPIES = 8
PROBE_MARGIN = 1.2
PublishHandler = Callable[[str, bool, bool], None]
PictureHandler = Callable[[str, bool, str], None]  # subscriber, picture sent, why
QualityHandler = Callable[[str, bool, str], None]  # subscriber, on the lower quality, why
SLOT_KINDS = {"program": ("video", 90000), "chair_audio": ("audio", 48000), "floor_audio": ("audio", 48000)}


@dataclass
class MediaCounters:
    """Totals since the coordinator started, for /metrics."""

    # (participant, direction, kind): rooms, and the others (coordinator.participants), told apart at scrape time
    bytes: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    forwarded: int = 0
    keyframe_requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class KeyframeGate:
    """At most one keyframe request per publisher per interval; extra requests are coalesced."""

    def __init__(self, send: Callable[[], None], interval: float = KEYFRAME_INTERVAL) -> None:
        self._send = send
        self._interval = interval
        self._last = -interval
        self._pending: asyncio.TimerHandle | None = None
        self.sent = 0

    def request(self) -> None:
        if self._pending is not None:
            return
        wait = self._last + self._interval - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self._pending = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._last = time.monotonic()
        self.sent += 1
        self._send()

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()


class MeetingRouter:
    def __init__(
        self,
        occurrence: int,
        chair: str,
        mode: str,
        counters: MediaCounters,
        on_publish: PublishHandler | None = None,
        on_picture: PictureHandler | None = None,
        on_quality: QualityHandler | None = None,
    ) -> None:
        self.occurrence = occurrence
        self._on_publish = on_publish
        self._on_picture = on_picture
        self._on_quality = on_quality
        self.qualities = Qualities()
        self._publishing: dict[str, tuple[bool, bool]] = {}
        self.chair = chair
        self.mode = mode
        self.floor: str | None = None
        self.muted: set[str] = set()  # rooms whose sound the operator switched off
        self.relay: Relay | None = None  # the chair's level, when this meeting is relayed from above
        self.fallback: str | None = None  # the room shown instead of a relayed chair whose link is down
        self.counters = counters
        self.peers: dict[str, RoomPeer] = {}
        self.viewers: dict[str, RoomPeer] = {}  # web pages watching: they receive like a room, send nothing
        self.recorders: set[str] = set()  # subscribers without a peer, writing what they get to files
        self.streams: dict[str, dict[str, SlotStream]] = {}
        self.fanout: dict[tuple[str, str], list[SlotStream]] = {}
        self.speaker = ActiveSpeaker()
        self._previous_talker: str | None = None
        self._keyframes: dict[str, KeyframeGate] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.budgets = ReceiveBudgets()
        self._wire: dict[tuple[str, str], int] = defaultdict(int)  # (source, kind) -> bytes as on the wire
        self._wanted: dict[str, Slots] = {}  # each subscriber's slots before its budget is applied
        self._ticker = asyncio.create_task(self._every_second(), name=f"router-{occurrence}")

    # --- membership -----------------------------------------------------------

    async def add(self, room: str, offer_sdp: str) -> str:
        """Answer a room's offer; a newer offer replaces the room's older peer."""
        await self.remove(room, "replaced by a new offer")
        peer, answer = await self._subscribe(room, offer_sdp, sending_layout(offer_sdp))
        self.peers[room] = peer
        self._keyframes[room] = KeyframeGate(peer.request_keyframe)
        if peer.layered:
            self._keyframes[low_of(room)] = KeyframeGate(partial(peer.request_keyframe, low_of(room)))
        self.reroute()
        return answer

    async def add_viewer(self, viewer: str, offer_sdp: str) -> str:
        """Answer a watching page's receive-only offer; it gets what a room in the audience gets."""
        await self.remove_viewer(viewer, "replaced by a new offer")
        self.viewers[viewer], answer = await self._subscribe(viewer, offer_sdp, VIEWER_LAYOUT)
        self.reroute()
        return answer

    def add_recorder(self, name: str, sends: dict[str, SendPacket]) -> None:
        """A subscriber with no peer: its slots' packets go to ``sends`` (one per slot), as to a room's peer."""
        self._open_streams(name, sends)
        self.recorders.add(name)
        self.reroute()

    def _open_streams(self, name: str, sends: dict[str, SendPacket]) -> None:
        self.streams[name] = {
            slot: SlotStream(name, slot, kind, clock, sends[slot]) for slot, (kind, clock) in SLOT_KINDS.items()
        }

    def keyframe_for(self, name: str) -> None:
        """A subscriber without a peer asks for a keyframe of its program (a new piece, a lost packet)."""
        self._subscriber_wants_keyframe(name, "program")

    async def _subscribe(self, name: str, offer_sdp: str, layout: Layout) -> tuple[RoomPeer, str]:
        """A peer answering ``offer_sdp`` and its three slot streams."""
        peer = RoomPeer(
            name,
            self.occurrence,
            self.on_packet,
            self._subscriber_wants_keyframe,
            self._peer_closed,
            layout,
            self._peer_connected,
        )
        try:
            answer = await peer.answer(offer_sdp)
        except Exception:
            await peer.close()
            raise
        self._open_streams(name, {slot: sender.send for slot, sender in peer.senders.items()})
        return peer, answer

    async def remove_viewer(self, viewer: str, reason: str) -> None:
        peer = self.viewers.pop(viewer, None)
        if peer is None:
            return
        log.info("%s stopped watching meeting occurrence %s (%s)", viewer, self.occurrence, reason)
        self.streams.pop(viewer, None)
        self.reroute()
        await peer.close()

    async def remove(self, room: str, reason: str) -> None:
        peer = self.peers.pop(room, None)
        if peer is None:
            return
        log.info("room %s: media peer removed (%s)", room, reason)
        self._publishing.pop(room, None)
        self.streams.pop(room, None)
        for source in (room, low_of(room)):
            gate = self._keyframes.pop(source, None)
            if gate is not None:
                gate.cancel()
        self.speaker.forget(room)
        self.budgets.forget(room)
        self.qualities.forget(room)
        self.reroute()
        await peer.close()

    def _ready(self, subscriber: str) -> bool:
        """A subscriber that can take a keyframe now: its peer is connected (or it has none)."""
        peer = self.peers.get(subscriber) or self.viewers.get(subscriber)
        return peer is None or peer.connected

    def _peer_connected(self, peer: RoomPeer) -> None:
        """A keyframe sent before the connection was up went nowhere: ask for one now."""
        for stream in self.streams.get(peer.room, {}).values():
            if stream.waiting_keyframe and stream.source is not None:
                self._keyframe_from(stream.source)

    def _peer_closed(self, peer: RoomPeer) -> None:
        if self.peers.get(peer.room) is peer:
            task = asyncio.ensure_future(self.remove(peer.room, "connection failed or closed"))
        elif self.viewers.get(peer.room) is peer:
            task = asyncio.ensure_future(self.remove_viewer(peer.room, "connection failed or closed"))
        else:
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def attach_relay(self, relay: Relay, fallback: str | None) -> None:
        """Take the chair's media from ``relay`` (and send media up through it); ``fallback`` stands in."""
        self.relay, self.fallback = relay, fallback
        self._keyframes[relay.name] = KeyframeGate(relay.request_keyframe)
        self.reroute()

    def relay_wants_keyframe(self) -> None:
        """The other level asked for a keyframe of what goes up."""
        stream = self.relay.up.get("video") if self.relay is not None else None
        if stream is not None and stream.source is not None:
            self._keyframe_from(stream.source)

    async def close(self) -> None:
        self._ticker.cancel()
        for name in list(self.recorders):
            self.streams.pop(name, None)
        self.recorders.clear()
        for viewer in list(self.viewers):
            await self.remove_viewer(viewer, "meeting ended")
        for room in list(self.peers):
            await self.remove(room, "meeting ended")

    def flowing(self, room: str) -> bool:
        peer = self.peers.get(room)
        return peer is not None and peer.flowing()

    # --- routing ----------------------------------------------------------------

    def set_floor(self, room: str | None) -> None:
        if self.floor is not None and self.floor != room:
            self._previous_talker = self.floor
        self.floor = room
        self.reroute()

    def set_mode(self, chair: str, mode: str) -> None:
        if (chair, mode) != (self.chair, self.mode):
            self.chair, self.mode = chair, mode
            self.reroute()

    def set_budget(self, room: str, kbps: int | None) -> None:
        """The most ``room``'s link takes (its hello said so); None: no limit. A room with a cap gets the
        lower quality from its first picture, until the higher one is measured to fit."""
        self.budgets.set_cap(room, kbps)
        reason = f"hạn mức {kbps} kbit/s" if kbps is not None else None
        if self.qualities.cap(room, reason):
            self.reroute()

    def set_muted(self, room: str, muted: bool) -> None:
        if muted:
            self.muted.add(room)
        else:
            self.muted.discard(room)

    def talker(self) -> str | None:
        return talker(self.mode, self.floor, self.speaker.current)

    def reroute(self) -> None:
        """Point every slot at its source and rebuild the fan-out table."""
        speaking = self.talker()
        publishing = set(self.peers)
        relay, relay_floor = self.relay, None
        if relay is not None and relay.live:
            relay_floor = relay.floor_name
            publishing |= {relay.name, relay_floor}
        fanout: dict[tuple[str, str], list[SlotStream]] = defaultdict(list)
        pointed: list[tuple[SlotStream, str | None]] = []
        pictures = publishing - {relay.name} if relay is not None and relay.live and not relay.picture else None
        self._wanted = {}
        for room, streams in self.streams.items():
            slots = slots_for(
                room, self.chair, speaking, publishing, self._previous_talker, self.fallback, relay_floor, pictures
            )
            self._wanted[room] = slots
            slots = replace(slots, program=None) if room in self.budgets.held else self._shown(room, slots)
            pointed += [
                (streams["program"], slots.program),
                (streams["chair_audio"], slots.chair_audio),
                (streams["floor_audio"], slots.floor_audio),
            ]
        if relay is not None:
            pointed += [(stream, relay.up_source_for(kind, set(self.peers))) for kind, stream in relay.up.items()]
        for stream, source in pointed:
            if stream.switch(source) and source is not None and self._ready(stream.room):
                self._keyframe_from(source)
            for feeding in (stream.source, stream.pending):  # until the cut-over, both feed the stream
                if feeding is not None:
                    fanout[(feeding, stream.kind)].append(stream)
        self.fanout = dict(fanout)
        self._tell_publishers()

    def _tell_publishers(self) -> None:
        """Rooms send only what someone receives; in discussion mode everyone's sound (for the speaker)."""
        if self._on_publish is None:
            return
        for room in self.peers:
            video = (room, "video") in self.fanout or (low_of(room), "video") in self.fanout
            wanted = (video, (room, "audio") in self.fanout or self.mode == "discussion")
            if self._publishing.get(room) != wanted:
                self._publishing[room] = wanted
                self._on_publish(room, *wanted)

    def routed_to(self, room: str) -> Slots | None:
        """The room whose media the router sends this subscriber on each slot now (None: nothing on that
        slot); None when the subscriber has no peer."""
        streams = self.streams.get(room)
        if streams is None:
            return None
        program = streams["program"].source
        return Slots(
            program=program.removesuffix(LOW) if program is not None else None,
            chair_audio=streams["chair_audio"].source,
            floor_audio=streams["floor_audio"].source,
        )

    # --- packets ----------------------------------------------------------------

    def on_packet(self, room: str, kind: str, packet: RtpPacket) -> None:
        counters = self.counters
        counters.bytes[(room, "in", kind)] += len(packet.payload)
        self._wire[(room, kind)] += len(packet.payload) + WIRE_OVERHEAD
        if kind == "audio" and room in self.muted:
            return
        if kind == "audio" and self.mode == "discussion":
            level = packet.extensions.audio_level
            if level is not None and self.speaker.observe(room, level[1]):
                log.info("meeting occurrence %s: active speaker is now %s", self.occurrence, room)
                self.reroute()
        streams = self.fanout.get((room, kind))
        if not streams:
            return
        vp8 = inspect(packet.payload) if kind == "video" else None
        for stream in streams:
            try:
                sent = stream.forward(packet, vp8, room)
            except Exception:  # one subscriber's broken transport must not starve the others in this loop
                log.exception("%s: copy of %s's %s packet failed", stream.room, room, kind)
                continue
            if sent:
                counters.forwarded += 1
                counters.bytes[(stream.room, "out", kind)] += sent

    # --- keyframes ----------------------------------------------------------------

    def _keyframe_from(self, source: str) -> None:
        gate = self._keyframes.get(source)
        if gate is not None:
            self.counters.keyframe_requests[source] += 1
            gate.request()

    def _subscriber_wants_keyframe(self, room: str, slot: str) -> None:
        stream = self.streams.get(room, {}).get(slot)
        if stream is not None and stream.kind == "video" and stream.source is not None:
            self._keyframe_from(stream.source)

    async def _every_second(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(KEYFRAME_INTERVAL)
                self._choose_qualities()
                self._apply_budgets()
                self._repeat_keyframe_requests()

    def _choose_qualities(self) -> None:
        """Move subscribers whose links lose the program's packets to the lower quality, and back."""
        now = time.monotonic()
        changed = []
        for name, peer in (*self.peers.items(), *self.viewers.items()):
            sender = peer.senders.get("program")
            if sender is None:
                continue
            # A probe's copies go as retransmissions: the link that drops them is too thin for the higher rate.
            loss = None if sender.loss is None else max(sender.loss, sender.rtx_loss)
            if self.qualities.observe(name, sender.reports, loss, now) or self._within_cap(name):
                changed.append(name)
            choice = self.qualities.choices[name]
            sender.probe_copies = self._probe_copies(name) if choice.probing_since is not None else 0
        if not changed:
            return
        self.reroute()
        for name in changed:
            choice = self.qualities.choices[name]
            log.info(
                "%s: program picture in the %s quality %s",
                name,
                *(("lower", f"({choice.reason})") if choice.low else ("higher", "again")),
            )
            if self._on_quality is not None:
                self._on_quality(name, choice.low, choice.reason)

    def _within_cap(self, subscriber: str) -> bool:
        """A capped subscriber gets the higher quality once it fits the cap with room to spare, and the
        lower again when it does not; True if that changed."""
        cap, wanted = self.budgets.caps.get(subscriber), self._wanted.get(subscriber)
        if cap is None or wanted is None or wanted.program is None:
            return False
        need = self.budgets.need(wanted)
        if not need:
            return False  # nothing measured yet
        fits = need <= RESUME_BELOW * cap
        reason = None if fits else f"hình và tiếng {need / 1000:.0f} kbit/s vượt hạn mức {cap / 1000:.0f} kbit/s"
        return self.qualities.cap(subscriber, reason)

    def _probe_copies(self, subscriber: str) -> int:
        """Copies of each lower-quality packet that bring the subscriber's stream a fifth over the higher rate:
        a link that carries the probe carries the higher quality with room to spare."""
        source = self.streams[subscriber]["program"].source
        if source is None:
            return 0
        high, low = self.budgets.rate(source.removesuffix(LOW), "video"), self.budgets.rate(source, "video")
        return max(1, min(MAX_PROBE_COPIES, math.ceil(PROBE_MARGIN * high / low) - 1)) if high and low else 4

    def _shown(self, subscriber: str, slots: Slots) -> Slots:
        """``slots`` with the program in the quality the subscriber gets."""
        peer = self.peers.get(slots.program or "")
        if peer is not None and peer.layered and self.qualities.is_low(subscriber):
            return replace(slots, program=low_of(slots.program or ""))
        return slots

    def _apply_budgets(self) -> None:
        """Hold back or send again the program picture of subscribers with a budget."""
        budgets = self.budgets
        budgets.sample(self._wire, time.monotonic())
        changed = [
            room
            for room in budgets.caps
            if room in self._wanted and budgets.decide(room, self._shown(room, self._wanted[room]))
        ]
        if not changed:
            return
        self.reroute()
        for room in changed:
            sent = room not in budgets.held
            log.info("%s: program picture %s: %s", room, "sent again" if sent else "held back", budgets.reasons[room])
            if self._on_picture is not None:
                self._on_picture(room, sent, budgets.reasons[room])

    def _repeat_keyframe_requests(self) -> None:
        """Late joiners wait for a keyframe: keep asking while anyone still waits."""
        every = [s for streams in self.streams.values() for s in streams.values()]
        every += self.relay.up.values() if self.relay is not None else ()
        waiting = {s.source for s in every if s.waiting_keyframe and s.source is not None and self._ready(s.room)}
        waiting |= {s.pending for s in every if s.pending is not None and self._ready(s.room)}
        for source in waiting:
            self._keyframe_from(source)
