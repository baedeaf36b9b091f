"""Late joiner: time from a room's offer to its first program packet, with the keyframe gate idle.

python -m bench.late_joiner
"""

from __future__ import annotations

import asyncio
import statistics
import time

from coordinator.media.router import MediaCounters, MeetingRouter
from node_agent.media import MediaPeer
from node_agent.testsource import TestSource


async def join(router: MeetingRouter, room: str, source: TestSource) -> MediaPeer:
    peer = MediaPeer(router.occurrence, source, False)
    await peer.accept(await router.add(room, await peer.offer()))
    return peer


async def main(rounds: int = 10) -> None:
    sources = {room: TestSource(room) for room in ("ubnd", "tdp-01")}
    router = MeetingRouter(1, "ubnd", "presentation", MediaCounters())
    chair = await join(router, "ubnd", sources["ubnd"])
    await asyncio.sleep(2)
    first_picture: list[float] = []
    connected: list[float] = []
    for _ in range(rounds):
        await asyncio.sleep(1.2)  # let the chair's keyframe gate (one request a second) be free
        started = time.monotonic()
        agent = await join(router, "tdp-01", sources["tdp-01"])
        while router.peers["tdp-01"].pc.connectionState != "connected":  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        connected.append(time.monotonic() - started)
        while agent.slots["program"].packets == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        first_picture.append(time.monotonic() - started)
        await agent.close()
        await router.remove("tdp-01", "next round")
    print(
        f"first picture after the offer: median {statistics.median(first_picture):.3f} s, "
        f"max {max(first_picture):.3f} s; connected: median {statistics.median(connected):.3f} s"
    )
    await router.close()
    await chair.close()


if __name__ == "__main__":
    asyncio.run(main())
