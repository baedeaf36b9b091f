"""The self-test's media loop: a peer that sends a room's own picture and sound straight back.

A room's ``phonghop-agent check`` offers its test pattern and tone; this peer
answers, relays what it receives back on the same connection, and goes away
after a short while. It decodes and re-encodes (aiortc's MediaRelay), which is
fine for a few seconds of a small test picture and proves the whole path:
ICE, DTLS, SRTP, codecs, both directions.

The offer is checked like a meeting offer; a room has at most one loop (a new
self-test replaces its old one) and a few tries a minute; a loop whose peer
has not connected within ``CONNECT_SECONDS`` is closed; a failure at any step
closes the peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

from coordinator.media.peer import ECHO_LAYOUT, OfferError, check_offer
from coordinator.ratelimit import TokenBuckets
from phonghop.webrtc import peer_connection

log = logging.getLogger(__name__)

ECHO_SECONDS = 30.0
CONNECT_SECONDS = 10.0
MAX_ECHOES = 8  # a few seconds each; rooms told "busy" try again
TRIES_BURST = 3
TRIES_EVERY_SECONDS = 10.0


class EchoBusy(Exception):
    pass


class Echoes:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tries = TokenBuckets(rate=1 / TRIES_EVERY_SECONDS, burst=TRIES_BURST)

    def __len__(self) -> int:
        return len(self._tasks)

    async def answer(self, room_id: str, offer_sdp: str) -> str:
        check_offer(offer_sdp, ECHO_LAYOUT)
        wait = self._tries.take(room_id)
        if wait > 0:
            raise EchoBusy(f"room {room_id} started {TRIES_BURST} self-tests lately; try again in {wait:.0f} s")
        await self._stop(room_id)  # one loop per room: a new self-test replaces the old one
        if len(self._tasks) >= MAX_ECHOES:
            raise EchoBusy(f"{MAX_ECHOES} self-tests are running; try again in {ECHO_SECONDS:.0f} s")
        pc = peer_connection()
        try:
            answer = await self._answer(pc, offer_sdp)
        except Exception as exc:
            await pc.close()
            log.info("room %s: self-test offer refused: %s", room_id, exc)
            raise OfferError(f"the offer was refused: {exc}") from exc
        task = asyncio.create_task(self._linger(room_id, pc), name=f"echo-{room_id}")
        self._tasks[room_id] = task
        task.add_done_callback(
            lambda done: self._tasks.pop(room_id, None) if self._tasks.get(room_id) is done else None
        )
        log.info("room %s: self-test media loop answered", room_id)
        return answer

    @staticmethod
    async def _answer(pc: RTCPeerConnection, offer_sdp: str) -> str:
        relay = MediaRelay()

        @pc.on("track")
        def _echo(track: MediaStreamTrack) -> None:
            pc.addTrack(relay.subscribe(track))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    @staticmethod
    async def _linger(room_id: str, pc: RTCPeerConnection) -> None:
        try:
            for tick in range(int(ECHO_SECONDS * 4)):
                if pc.connectionState in ("failed", "closed"):
                    break
                if tick >= CONNECT_SECONDS * 4 and pc.connectionState != "connected":
                    log.info("room %s: self-test media loop never connected", room_id)
                    break
                await asyncio.sleep(0.25)
        finally:
            await pc.close()
            log.info("room %s: self-test media loop closed", room_id)

    async def _stop(self, room_id: str) -> None:
        task = self._tasks.pop(room_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        for room_id in list(self._tasks):
            await self._stop(room_id)
