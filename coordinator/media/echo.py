"""The self-test's media loop: a peer that sends a room's own picture and sound straight back.

A room's ``phonghop-agent check`` offers its test pattern and tone; this peer
answers, relays what it receives back on the same connection, and goes away
after a short while. It decodes and re-encodes (aiortc's MediaRelay), which is
fine for a few seconds of a small test picture and proves the whole path:
ICE, DTLS, SRTP, codecs, both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiortc import RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from phonghop.webrtc import peer_connection

log = logging.getLogger(__name__)

ECHO_SECONDS = 30.0
MAX_ECHOES = 8  # a few seconds each; rooms told "busy" try again


class EchoBusy(Exception):
    pass


class Echoes:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    async def answer(self, room_id: str, offer_sdp: str) -> str:
        if len(self._tasks) >= MAX_ECHOES:
            raise EchoBusy(f"{MAX_ECHOES} self-tests are running; try again in {ECHO_SECONDS:.0f} s")
        pc = peer_connection()
        relay = MediaRelay()

        @pc.on("track")
        def _echo(track: MediaStreamTrack) -> None:
            pc.addTrack(relay.subscribe(track))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = str(pc.localDescription.sdp)

        async def linger() -> None:
            try:
                for _ in range(int(ECHO_SECONDS * 4)):
                    if pc.connectionState in ("failed", "closed"):
                        break
                    await asyncio.sleep(0.25)
            finally:
                await pc.close()
                log.info("room %s: self-test media loop closed", room_id)

        task = asyncio.create_task(linger(), name=f"echo-{room_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info("room %s: self-test media loop answered", room_id)
        return answer

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
