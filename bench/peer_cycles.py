"""Peer churn: a room's peer opened and closed many times; threads, tasks, sockets and memory must stay flat.

python -m bench.peer_cycles [cycles]
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import threading
import time

from coordinator.media.router import MediaCounters, MeetingRouter
from node_agent.media import MediaPeer
from node_agent.testsource import TestSource


def _usage() -> str:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    threads, tasks, fds = threading.active_count(), len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd"))
    return f"threads {threads}, tasks {tasks}, open files {fds}, max RSS {rss_mb:.0f} MB"


async def _join(router: MeetingRouter, room: str, source: TestSource) -> MediaPeer:
    peer = MediaPeer(router.occurrence, source, False)
    await peer.accept(await router.add(room, await peer.offer()))
    return peer


async def main(cycles: int) -> None:
    sources = {room: TestSource(room) for room in ("ubnd", "tdp-01")}
    router = MeetingRouter(1, "ubnd", "presentation", MediaCounters())
    chair = await _join(router, "ubnd", sources["ubnd"])
    await asyncio.sleep(1)
    print(f"before: {_usage()}")
    started = time.monotonic()
    for index in range(cycles):
        agent = await _join(router, "tdp-01", sources["tdp-01"])
        while router.peers["tdp-01"].pc.connectionState != "connected" or agent.state != "connected":  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await agent.close()
        await router.remove("tdp-01", "churn")
        if (index + 1) % 100 == 0:
            await asyncio.sleep(0.5)
            print(f"after {index + 1} cycles: {_usage()}")
    print(f"{cycles} cycles in {time.monotonic() - started:.1f} s")
    await router.close()
    await chair.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
