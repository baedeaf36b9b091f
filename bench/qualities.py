"""What a room receives per hour in each quality of the program picture.

    python -m bench.qualities --seconds 60

In one process: a router, the chair publishing the test source in two qualities
(640x360 at 500 kbit/s and 320x180 at 150 kbit/s, Opus voice at 24 kbit/s) and
two rooms receiving: one on the higher quality, one held on the lower by a cap.
Bytes are what the router sent each room (payload and RTP header; a packet's
SRTP tag and UDP/IP headers add about 38 bytes, counted apart). One JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from coordinator.media.budget import WIRE_OVERHEAD
from coordinator.media.router import MediaCounters, MeetingRouter
from node_agent.media import MediaPeer
from node_agent.testsource import TestSource


async def measure(seconds: float) -> dict[str, object]:
    router = MeetingRouter(1, "ubnd", "presentation", MediaCounters())
    peers = []
    try:
        for room in ("ubnd", "tdp-01", "tdp-02"):
            peer = MediaPeer(1, TestSource(room, low=(320, 180, 150_000)), decode=False)
            answer = await router.add(room, await peer.offer())
            if room == "tdp-02":
                router.set_budget(room, 400)
            await peer.accept(answer)
            peers.append(peer)
        await asyncio.sleep(5)
        counts = {room: dict(_sent(router, room)) for room in ("tdp-01", "tdp-02")}
        await asyncio.sleep(seconds)
        result: dict[str, object] = {"seconds": seconds}
        for room, quality in (("tdp-01", "high"), ("tdp-02", "low")):
            now = _sent(router, room)
            payload = sum(now[k] - counts[room][k] for k in now)
            packets = router.peers[room].senders
            result[quality] = {
                "program": router.streams[room]["program"].source,
                "kbps": round(payload * 8 / seconds / 1000, 1),
                "mb_per_hour": round(payload * 3600 / seconds / 1e6, 1),
                "packets_per_second": round(sum(s.packets for s in packets.values()) / (seconds + 5), 1),
            }
        result["wire_overhead_bytes_per_packet"] = WIRE_OVERHEAD - 12
        return result
    finally:
        await router.close()
        for peer in peers:
            await peer.close()


def _sent(router: MeetingRouter, room: str) -> dict[str, int]:
    return {kind: router.counters.bytes[(room, "out", kind)] for kind in ("video", "audio")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.seconds))))


if __name__ == "__main__":
    main()
