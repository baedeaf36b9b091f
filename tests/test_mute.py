"""Muting a room in the router: its sound stops reaching the others, its picture does not."""

from __future__ import annotations

import asyncio
import time

from coordinator.media.router import MediaCounters, MeetingRouter
from node_agent.testsource import TestSource
from tests.test_forwarding import ROOMS, _join, _until


async def test_a_muted_room_is_not_heard() -> None:
    router = MeetingRouter(occurrence=3, chair="ubnd", mode="presentation", counters=MediaCounters())
    agents = {room: await _join(router, room, TestSource(room)) for room in ROOMS}
    try:
        router.set_floor("tdp-02")
        listener = agents["tdp-01"]
        await _until(lambda: listener.slots["floor_audio"].packets > 25, 20, "the floor's sound")
        await _until(lambda: listener.slots["program"].packets > 25, 20, "the floor's picture")

        router.set_muted("tdp-02", True)
        # Packets already on their way still arrive; then the floor's sound must stop (or this times out).
        await _until(lambda: time.monotonic() - listener.slots["floor_audio"].last_packet > 0.5, 15, "silence")
        heard, seen = listener.slots["floor_audio"].packets, listener.slots["program"].packets
        chair_heard = listener.slots["chair_audio"].packets
        await asyncio.sleep(1.5)
        assert listener.slots["floor_audio"].packets == heard
        assert listener.slots["program"].packets > seen + 5  # the picture still goes out
        assert listener.slots["chair_audio"].packets > chair_heard + 25  # other rooms are still heard

        router.set_muted("tdp-02", False)
        await _until(lambda: listener.slots["floor_audio"].packets > heard + 25, 10, "the sound back after unmute")
    finally:
        await router.close()
        for agent in agents.values():
            await agent.close()
