"""Prometheus metrics, read from the live state at scrape time (in the event loop: /metrics is async).

A collector that reads the live state and the registry cannot drift from them, and a
removed room simply disappears from the next scrape.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coordinator import heap
from coordinator.backup.status import BackupCollector
from coordinator.connections import Connections
from coordinator.live_meetings import LiveMeetings
from coordinator.media.peer import LOW
from coordinator.participants import kind_of
from coordinator.readiness_store import ReadinessStore
from coordinator.registry import Registry
from phonghop.protocol import DEVICE_NAMES


class StateCollector(Collector):
    def __init__(
        self, connections: Connections, live: LiveMeetings, registry: Registry, next_starts: dict[int, float]
    ) -> None:
        self._connections = connections
        self._live = live
        self._registry = registry
        self._next_starts = next_starts

    def collect(self) -> Iterator[Metric]:
        connections, live, rooms = self._connections, self._live, self._registry.rooms
        up = GaugeMetricFamily(
            "phonghop_room_up",
            "1 while the room's agent is connected and heartbeats are fresh",
            labels=["room", "group"],
        )
        seen = GaugeMetricFamily(
            "phonghop_room_last_seen_timestamp_seconds",
            "Last heartbeat from the room's agent",
            labels=["room"],
        )
        device = GaugeMetricFamily(
            "phonghop_room_device_ok",
            "1 when the agent reports the device working",
            labels=["room", "device"],
        )
        info = GaugeMetricFamily(
            "phonghop_agent_info",
            "The agent's version, as it said in its hello",
            labels=["room", "version"],
        )
        room_info = GaugeMetricFamily(
            "phonghop_room_info",
            "Room identity from the registry",
            labels=["room", "group", "name"],
        )
        connects = CounterMetricFamily(
            "phonghop_room_connections",
            "Control connections accepted per room (flaps show here)",
            labels=["room"],
        )
        for room_id, record in rooms.items():
            up.add_metric([room_id, record.group], 1.0 if connections.is_up(room_id) else 0.0)
            room_info.add_metric([room_id, record.group, record.name], 1.0)
            connects.add_metric([room_id], float(connections.connects_total.get(room_id, 0)))
            if record.last_seen is not None:
                seen.add_metric([room_id], record.last_seen.timestamp())
            if record.agent_version:
                info.add_metric([room_id, record.agent_version], 1.0)
            for name in DEVICE_NAMES:
                if name in record.devices:
                    device.add_metric([room_id, name], 1.0 if record.devices[name] else 0.0)
        yield from (up, seen, device, info, room_info, connects)

        active = GaugeMetricFamily("phonghop_meeting_active", "1 while the meeting runs", labels=["meeting"])
        expected = GaugeMetricFamily(
            "phonghop_meeting_expected_rooms",
            "Rooms invited to the running meeting",
            labels=["meeting"],
        )
        in_meeting = GaugeMetricFamily(
            "phonghop_room_in_meeting",
            "1 while the room is in that meeting",
            labels=["room", "meeting"],
        )
        meeting_info = GaugeMetricFamily(
            "phonghop_meeting_info", "Meeting identity", labels=["meeting", "title", "chair"]
        )
        recording = GaugeMetricFamily(
            "phonghop_recording_active",
            "1 while a meeting that is to be recorded is being written to a file; 0: it should be and is not",
            labels=["meeting"],
        )
        recorded = GaugeMetricFamily(
            "phonghop_recording_bytes", "Bytes of this occurrence's recording written so far", labels=["meeting"]
        )
        guests = GaugeMetricFamily(
            "phonghop_meeting_guests",
            "Guests (by invitation, from a browser) in the running meeting",
            labels=["meeting"],
        )
        next_start = GaugeMetricFamily(
            "phonghop_meeting_next_start_timestamp_seconds",
            "Next scheduled start",
            labels=["meeting"],
        )
        for meeting_id, ts in self._next_starts.items():
            active.add_metric([str(meeting_id)], 1.0 if meeting_id in live.meetings else 0.0)
            next_start.add_metric([str(meeting_id)], ts)
        for meeting in live.meetings.values():
            label = str(meeting.meeting_id)
            if meeting.meeting_id not in self._next_starts:
                active.add_metric([label], 1.0)
            expected.add_metric([label], float(len(meeting.expected)))
            guests.add_metric([label], float(len(meeting.guests)))
            if meeting.recorder is not None:
                recording.add_metric([label], 1.0 if meeting.recorder.recording else 0.0)
                recorded.add_metric([label], float(meeting.recorder.bytes_written))
            meeting_info.add_metric([label, meeting.title, meeting.chair], 1.0)
            for room_id in sorted(meeting.expected):
                in_meeting.add_metric([room_id, label], 1.0 if meeting.in_meeting(room_id) else 0.0)
        yield from (active, expected, in_meeting, meeting_info, guests, recording, recorded, next_start)
        yield from self._media()
        tasks = GaugeMetricFamily(
            "phonghop_coordinator_tasks", "Asyncio tasks alive in the coordinator (a leak shows as steady growth)"
        )
        tasks.add_metric([], float(len(asyncio.all_tasks())))
        yield tasks
        held = heap.usage()
        if held is not None:
            family = GaugeMetricFamily(
                "phonghop_coordinator_heap_bytes",
                "C heap (malloc) of the coordinator: in use, and free but kept by the allocator",
                labels=["state"],
            )
            family.add_metric(["in_use"], float(held.in_use))
            family.add_metric(["free"], float(held.free))
            yield family

    def _media(self) -> Iterator[Metric]:
        live = self._live
        counters = live.media_counters
        rtt = GaugeMetricFamily("phonghop_room_rtt_seconds", "Round-trip time to the room (RTCP)", labels=["room"])
        loss = GaugeMetricFamily(
            "phonghop_room_packet_loss_ratio", "Packet loss, 0..1, per direction", labels=["room", "direction"]
        )
        jitter = GaugeMetricFamily(
            "phonghop_room_jitter_seconds", "Interarrival jitter of the room's media", labels=["room"]
        )
        for meeting in live.meetings.values():
            for room_id, peer in meeting.router.peers.items():
                if kind_of(room_id) != "room":
                    continue
                quality = peer.quality
                if quality.rtt is not None:
                    rtt.add_metric([room_id], quality.rtt)
                if quality.loss_in is not None:
                    loss.add_metric([room_id, "in"], quality.loss_in)
                if quality.loss_out is not None:
                    loss.add_metric([room_id, "out"], quality.loss_out)
                if quality.jitter is not None:
                    jitter.add_metric([room_id], quality.jitter)
        media_bytes = CounterMetricFamily(
            "phonghop_rtp_bytes",
            "Media payload bytes per room, direction and kind",
            labels=["room", "direction", "kind"],
        )
        guest_bytes: dict[tuple[str, str], float] = {}
        viewed = 0.0  # the recorder's bytes are phonghop_recording_bytes
        room_bytes: dict[tuple[str, str, str], float] = defaultdict(float)  # a room's two pictures as one
        for (participant, direction, kind), value in sorted(counters.bytes.items()):
            who = kind_of(participant)
            if who == "room":
                room_bytes[(participant.removesuffix(LOW), direction, kind)] += value
            elif who == "guest":  # one series for all guests: their ids come and go with invitations
                guest_bytes[(direction, kind)] = guest_bytes.get((direction, kind), 0.0) + value
            elif who == "viewer":
                viewed += value
        for (room_id, direction, kind), total in sorted(room_bytes.items()):
            media_bytes.add_metric([room_id, direction, kind], total)
        guest_media = CounterMetricFamily(
            "phonghop_guest_rtp_bytes",
            "Media payload bytes of all guests, per direction and kind",
            labels=["direction", "kind"],
        )
        for (direction, kind), total in sorted(guest_bytes.items()):
            guest_media.add_metric([direction, kind], total)
        forwarded = CounterMetricFamily("phonghop_rtp_packets_forwarded", "RTP packets sent on by the router")
        forwarded.add_metric([], float(counters.forwarded))
        keyframes = CounterMetricFamily(
            "phonghop_keyframe_requests", "Keyframe requests to a publishing room", labels=["room"]
        )
        requests: dict[str, float] = defaultdict(float)
        for source, value in counters.keyframe_requests.items():
            if kind_of(source) == "room":
                requests[source.removesuffix(LOW)] += value
        for room_id, total in sorted(requests.items()):
            keyframes.add_metric([room_id], total)
        program_quality = GaugeMetricFamily(
            "phonghop_room_program_quality",
            "1 for the quality of the program picture the room receives now: high, or low while its link "
            "loses the high one's packets",
            labels=["room", "quality"],
        )
        for meeting in live.meetings.values():
            for room_id in sorted(meeting.router.peers):
                if kind_of(room_id) == "room":
                    low = meeting.router.qualities.is_low(room_id)
                    program_quality.add_metric([room_id, "low"], 1.0 if low else 0.0)
                    program_quality.add_metric([room_id, "high"], 0.0 if low else 1.0)
        held = GaugeMetricFamily(
            "phonghop_program_picture_held",
            "1 while a participant's program picture is held back: with its sound it exceeds the budget the "
            "participant stated (a commune's link to the province)",
            labels=["room"],
        )
        for meeting in live.meetings.values():
            for room_id in sorted(meeting.router.budgets.caps):
                held.add_metric([room_id], 1.0 if room_id in meeting.router.budgets.held else 0.0)
        viewers = GaugeMetricFamily("phonghop_live_viewers", "Web pages watching a running meeting (live view)")
        viewers.add_metric([], float(sum(len(m.router.viewers) for m in live.meetings.values())))
        viewer_bytes = CounterMetricFamily(
            "phonghop_live_view_bytes", "Media payload bytes sent to web pages watching a meeting"
        )
        viewer_bytes.add_metric([], viewed)
        yield from (
            rtt,
            loss,
            jitter,
            media_bytes,
            guest_media,
            forwarded,
            keyframes,
            program_quality,
            held,
            viewers,
            viewer_bytes,
        )


class ReadinessCollector(Collector):
    """``phonghop_room_ready`` and ``phonghop_room_ready_failed_check`` for meetings not yet over."""

    def __init__(self, readiness: ReadinessStore) -> None:
        self._readiness = readiness

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily(
            "phonghop_room_ready",
            "1 when the room passed its latest self-test before the meeting's next start",
            labels=["room", "meeting"],
        )
        failed = GaugeMetricFamily(
            "phonghop_room_ready_failed_check",
            "1 for the first check the room failed in its latest self-test before the meeting",
            labels=["room", "meeting", "check"],
        )
        checked = GaugeMetricFamily(
            "phonghop_room_ready_checked_timestamp_seconds",
            "When the room's latest self-test before the meeting ran",
            labels=["room", "meeting"],
        )
        for result in self._readiness.current():
            labels = [result.room, str(result.meeting_id)]
            ready.add_metric(labels, 1.0 if result.ok else 0.0)
            checked.add_metric(labels, result.checked_at.timestamp())
            if result.failed_check:
                failed.add_metric([*labels, result.failed_check], 1.0)
        yield from (ready, failed, checked)


class ControlMetrics:
    """Counters for events the state does not keep."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rejected = Counter(
            "phonghop_control_rejected",
            "Control connections refused before they were accepted",
            ["reason"],
            registry=registry,
        )
        self.errors = Counter(
            "phonghop_control_errors",
            "Bad messages received from an authenticated room",
            ["room", "reason"],
            registry=registry,
        )
        self.guest_entries = Counter(
            "phonghop_guest_entries",
            "Guests' attempts to enter with an invitation's link or code, by result",
            ["result"],
            registry=registry,
        )
        self.guest_errors = Counter(
            "phonghop_guest_control_errors",
            "Bad messages received from a guest's page",
            ["reason"],
            registry=registry,
        )


def build_registry(
    connections: Connections,
    live: LiveMeetings,
    registry: Registry,
    next_starts: dict[int, float],
    readiness: ReadinessStore,
    backup_status_file: Path | None = None,
) -> tuple[CollectorRegistry, ControlMetrics]:
    collectors = CollectorRegistry()
    ProcessCollector(registry=collectors)  # memory, open files and CPU of the coordinator process
    collectors.register(StateCollector(connections, live, registry, next_starts))
    collectors.register(ReadinessCollector(readiness))
    if backup_status_file is not None:
        collectors.register(BackupCollector(backup_status_file))
    return collectors, ControlMetrics(collectors)
