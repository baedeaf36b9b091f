"""Coordinator forwarding benchmark: the packet router against aiortc's decode-and-re-encode relay.

    python -m bench.sfu --mode sfu --rooms 28 --subscribers 28 --seconds 20

Two processes: a router (the coordinator's MeetingRouter, or a MediaRelay
stand-in with the same slots) and a load generator that runs the rooms: the
first --rooms publish the test source (pre-encoded VP8 640x360 ~500 kbps and
Opus, so the generator does not encode) and every room subscribes to its
three slots, counting packets without decoding. The router process's CPU is
read from /proc; loss is what the subscribers' receivers report; the added
delay is measured inside the router, from a decrypted packet handed to the
router to the encrypted packet handed to the socket, for every subscriber.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect as pyinspect
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# --- router process ------------------------------------------------------------------


def run_router(mode: str, port: int, code: str | None) -> None:
    if code is not None:
        sys.path.insert(0, code)  # another checkout's router, to compare two data paths in one run
    import uvicorn
    from fastapi import FastAPI

    from coordinator.media.router import MediaCounters, MeetingRouter

    app = FastAPI()
    state: dict[str, Any] = {}
    delays: list[float] = []
    copy_cpu = [0, 0]  # thread CPU ns spent in the router's packet handler, copies it sent meanwhile

    @app.on_event("startup")
    async def startup() -> None:
        if mode == "sfu":
            router = MeetingRouter(1, "room-000", "presentation", MediaCounters())
            original = router.on_packet

            def timed(room: str, kind: str, packet: Any) -> Any:
                started, cpu, copies = time.perf_counter(), time.thread_time_ns(), router.counters.forwarded
                handled = original(room, kind, packet)
                if pyinspect.isawaitable(handled):  # an older router's handler is a coroutine
                    return _finish(handled, started, cpu, copies)
                _count(started, cpu, copies)
                return None

            async def _finish(handled: Any, started: float, cpu: int, copies: int) -> None:
                await handled
                _count(started, cpu, copies)

            def _count(started: float, cpu: int, copies: int) -> None:
                sent = router.counters.forwarded - copies
                if sent:
                    copy_cpu[0] += time.thread_time_ns() - cpu
                    copy_cpu[1] += sent
                    # When the last subscriber's copy was handed to the socket: an upper bound for every copy.
                    delays.append(time.perf_counter() - started)

            router.on_packet = timed  # type: ignore[method-assign]
            state["router"] = router
        else:
            state["router"] = RelayRouter("room-000")

    @app.post("/offer")
    async def offer(body: dict[str, str]) -> dict[str, str]:
        return {"sdp": await state["router"].add(body["room"], body["sdp"])}

    @app.post("/delays/reset")
    async def reset() -> dict[str, int]:
        delays.clear()
        copy_cpu[:] = [0, 0]
        return {"ok": 1}

    @app.get("/delays")
    async def get_delays() -> dict[str, Any]:
        router = state["router"]
        forwarded = router.counters.forwarded if mode == "sfu" else 0
        return {
            "delays": sorted(delays)[:: max(1, len(delays) // 5000)],
            "forwarded": forwarded,
            "copy_cpu_us": copy_cpu[0] / copy_cpu[1] / 1000 if copy_cpu[1] else None,
        }

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", loop="asyncio")


class RelayRouter:
    """What aiortc offers out of the box: MediaRelay, so one decoder per track and one encoder per subscriber."""

    def __init__(self, chair: str) -> None:
        from aiortc.contrib.media import MediaRelay

        self.chair = chair
        self.relay = MediaRelay()
        self.tracks: dict[str, dict[str, Any]] = {}
        self.pending: list[tuple[Any, str]] = []

    async def add(self, room: str, sdp: str) -> str:
        from aiortc import RTCSessionDescription

        from phonghop.webrtc import peer_connection

        pc = peer_connection()
        tracks: dict[str, Any] = {}

        @pc.on("track")
        def on_track(track: Any) -> None:
            tracks.setdefault(track.kind, track)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if room == self.chair:
            self.tracks[room] = tracks
        chair = self.tracks.get(self.chair, {})
        for kind in ("video", "audio"):
            source = chair.get(kind) if room != self.chair else None
            pc.addTrack(self.relay.subscribe(source, buffered=False) if source else _Silent(kind))
        pc.addTrack(_Silent("audio"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)


def _Silent(kind: str) -> Any:
    from aiortc import MediaStreamTrack

    class Silent(MediaStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.kind = kind

        async def recv(self) -> Any:
            await asyncio.sleep(3600)

    return Silent()


# --- load generator ---------------------------------------------------------------------


@dataclass
class Counts:
    packets: int = 0
    frames: int = 0


class Room:
    def __init__(self, name: str, publish: bool, aiortc_rtcp: bool, two_qualities: bool = False) -> None:
        from node_agent.testsource import TestSource

        self.name = name
        self.source = TestSource(name, low=(320, 180, 150_000) if two_qualities else None) if publish else None
        self.counts: dict[int, Counts] = {}
        self.aiortc_rtcp = aiortc_rtcp  # report as aiortc does: a loop per sender and receiver

    async def join(self, client: httpx.AsyncClient) -> None:
        from aiortc import RTCSessionDescription

        from phonghop.aiortc_glue.rtcp import TrackReports
        from phonghop.aiortc_glue.tracks import on_keyframe_request, tap_receiver
        from phonghop.webrtc import peer_connection

        pc = peer_connection()
        self.pc = pc
        if self.source is not None:
            video = pc.addTransceiver(self.source.video, direction="sendrecv")
            on_keyframe_request(video.sender, self.source.video.request_keyframe)
            pc.addTransceiver(self.source.audio, direction="sendrecv")
        else:
            video = pc.addTransceiver(_Silent("video"), direction="sendrecv")
            pc.addTransceiver(_Silent("audio"), direction="sendrecv")
        pc.addTransceiver("audio", direction="recvonly")
        if self.source is not None and self.source.low is not None:
            low = pc.addTransceiver(self.source.low, direction="sendonly")
            on_keyframe_request(low.sender, self.source.request_low_keyframe)
        from aiortc import RTCRtpSender

        video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
        )

        @pc.on("track")
        def on_track(track: Any) -> None:
            index, transceiver = next((i, t) for i, t in enumerate(pc.getTransceivers()) if t.receiver.track is track)
            counts = self.counts.setdefault(index, Counts())

            async def count(packet: Any) -> None:
                counts.packets += 1
                counts.frames += packet.marker

            tap_receiver(transceiver.receiver, count)

        reports = None if self.aiortc_rtcp else TrackReports(pc)  # as a room's agent: one report a peer
        await pc.setLocalDescription(await pc.createOffer())
        answer = await client.post("/offer", json={"room": self.name, "sdp": pc.localDescription.sdp})
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.json()["sdp"], type="answer"))
        if reports is not None:
            reports.reporting.start()

    async def loss(self) -> tuple[int, int]:
        received = lost = 0
        for stat in (await self.pc.getStats()).values():
            if stat.type == "inbound-rtp" and stat.kind == "video":
                received += stat.packetsReceived
                lost += max(0, stat.packetsLost)
        return received, lost


async def load(
    base: str,
    rooms: int,
    subscribers: int,
    seconds: float,
    router_pid: int,
    aiortc_rtcp: bool,
    two_qualities: bool = False,
) -> dict[str, Any]:
    names = [f"room-{i:03d}" for i in range(subscribers)]
    members = [Room(name, i < rooms, aiortc_rtcp, two_qualities) for i, name in enumerate(names)]
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for member in members:
            await member.join(client)
        await asyncio.sleep(5)  # connect and get keyframes
        await client.post("/delays/reset")
        forwarded0 = (await client.get("/delays")).json()["forwarded"]
        before = {id(m): (m.counts.get(0, Counts()).packets, m.counts.get(0, Counts()).frames) for m in members}
        loss_before = [await m.loss() for m in members]
        cpu0, gen0, t0 = cpu_seconds(router_pid), time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, gen1, t1 = cpu_seconds(router_pid), time.process_time(), time.monotonic()
        loss_after = [await m.loss() for m in members]
        result = (await client.get("/delays")).json()
        for member in members:
            await member.pc.close()  # else aiortc's decoder threads keep the process alive
    elapsed = t1 - t0
    video_packets = sum(m.counts.get(0, Counts()).packets - before[id(m)][0] for m in members)
    frames = [(m.counts.get(0, Counts()).frames - before[id(m)][1]) / elapsed for m in members if m.name != "room-000"]
    received = sum(a[0] - b[0] for a, b in zip(loss_after, loss_before, strict=True))
    lost = sum(a[1] - b[1] for a, b in zip(loss_after, loss_before, strict=True))
    delays = result["delays"]
    forwarded_rate = (result["forwarded"] - forwarded0) / elapsed
    return {
        "forwarded_packets_per_second": forwarded_rate,
        "router_cpu_us_per_forwarded_packet": 1e6 * (cpu1 - cpu0) / (forwarded_rate * elapsed)
        if forwarded_rate
        else None,
        "router_cpu_percent": 100 * (cpu1 - cpu0) / elapsed,
        "copy_cpu_us": result["copy_cpu_us"],
        "generator_cpu_percent": 100 * (gen1 - gen0) / elapsed,
        "video_packets_per_second_received": video_packets / elapsed,
        "fps_min": min(frames) if frames else 0,
        "fps_median": sorted(frames)[len(frames) // 2] if frames else 0,
        "video_loss_ratio": lost / (received + lost) if received + lost else 0.0,
        "delay_p50_ms": 1000 * delays[len(delays) // 2] if delays else None,
        "delay_p99_ms": 1000 * delays[int(len(delays) * 0.99)] if delays else None,
    }


@contextlib.contextmanager
def router_process(mode: str, port: int, code: str | None) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "bench.sfu", "router", "--mode", mode, "--port", str(port)]
    proc = subprocess.Popen(command + (["--code", code] if code else []))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"http://127.0.0.1:{port}/delays/reset", timeout=1)
                break
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", default="load", choices=["load", "router"])
    parser.add_argument("--mode", choices=["sfu", "relay"], default="sfu")
    parser.add_argument("--port", type=int, default=8931)
    parser.add_argument("--rooms", type=int, default=28, help="publishing rooms")
    parser.add_argument("--subscribers", type=int, default=28, help="rooms receiving the three slots")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--code", help="run the router from this checkout (e.g. a git worktree of an older commit)")
    parser.add_argument(
        "--aiortc-rtcp", action="store_true", help="rooms report as aiortc does (before the agent's one report a peer)"
    )
    parser.add_argument("--two-qualities", action="store_true", help="publishers send a lower quality too")
    args = parser.parse_args()
    if args.role == "router":
        run_router(args.mode, args.port, args.code)
        return
    with router_process(args.mode, args.port, args.code) as proc:
        result = asyncio.run(
            load(
                f"http://127.0.0.1:{args.port}",
                min(args.rooms, args.subscribers),
                args.subscribers,
                args.seconds,
                proc.pid,
                args.aiortc_rtcp,
                args.two_qualities,
            )
        )
    mode = args.mode if args.code is None else f"{args.mode} from {args.code}"
    rtcp = "aiortc" if args.aiortc_rtcp else "one per peer"
    qualities = 2 if args.two_qualities else 1
    print(
        json.dumps(
            {
                "mode": mode,
                "rooms": args.rooms,
                "subscribers": args.subscribers,
                "room_rtcp": rtcp,
                "qualities": qualities,
                **result,
            }
        )
    )


if __name__ == "__main__":
    main()
