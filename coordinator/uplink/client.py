"""The commune's uplink: its control channel to the province coordinator and its media peer there.

The commune dials out (it sits behind NAT, like a room), enrolled at the
province as a room of group ``commune`` with its own token, and speaks the
rooms' protocol: hello and heartbeats, acknowledged join and leave, an offer
per meeting occurrence, floor, publish and hands. What the meeting means
inside the commune is :class:`coordinator.uplink.relayed.RelayedMeeting`'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from pathlib import Path

from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect

from coordinator.uplink.peer import UplinkPeer
from coordinator.uplink.relayed import RelayedMeeting
from phonghop import __version__, protocol
from phonghop.dialing import (
    NegotiationFailed,
    control_url,
    dial,
    negotiate,
    read_until_stopped,
    send_heartbeats,
    send_on,
    stay_connected,
)

log = logging.getLogger(__name__)

ANSWER_TIMEOUT = 10.0
MEDIA_TICK = 0.25  # how often the peer's health and the province media's arrival are looked at
RETRY_SECONDS = 2.0


class UplinkState:
    """What /metrics says about the uplink."""

    def __init__(self) -> None:
        self.up = False
        self.media_live = False
        self.sessions = 0
        self.peers = 0


class Uplink:
    def __init__(
        self,
        province_url: str,
        token_file: Path,
        commune: str,
        relayed: RelayedMeeting,
        heartbeat_interval: float,
        ca_file: Path | None = None,
        budget_kbps: int | None = None,
    ) -> None:
        self.url = control_url(province_url, commune)
        self.budget_kbps = budget_kbps  # the most the province may send down, kbit/s
        self.commune = commune
        self.relayed = relayed
        self.state = UplinkState()
        self._token_file = token_file
        self._ca_file = ca_file
        self._heartbeat = heartbeat_interval
        self._websocket: ClientConnection | None = None
        self._peer: UplinkPeer | None = None
        self._answer: asyncio.Future[str] | None = None
        self._joined = False  # this session's join was obeyed: offers are welcome
        self._wake = asyncio.Event()
        self._last_status: protocol.MediaStatus | None = None
        relayed.send_up = self.send
        relayed.send_packet = self._send_packet
        relayed.request_keyframe = self._program_keyframe

    async def run(self, stop: asyncio.Event) -> None:
        media = asyncio.create_task(self._media(stop), name="uplink-media")
        try:
            await stay_connected(self._dial, partial(self._session, stop=stop), stop, RETRY_SECONDS)
        finally:
            media.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await media
            await self._drop("coordinator stopping")

    def _dial(self) -> connect | None:
        try:
            token = self._token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            log.error("cannot read the commune's province token from %s (%s)", self._token_file, exc.strerror)
            return None
        if not token:
            log.error("the province token file %s is empty; enrol the commune at the province", self._token_file)
            return None
        return dial(self.url, token, f"phonghop-commune/{__version__}", 0.3, RETRY_SECONDS, self._ca_file)

    # --- the control session -------------------------------------------------------

    async def _session(self, websocket: ClientConnection, stop: asyncio.Event) -> float:
        self.state.sessions += 1
        log.info("uplink to the province open (%s), session %d", self.url, self.state.sessions)
        self._websocket, self._joined = websocket, False
        await self._drop("new control session")  # the province dropped our old peer with the old session
        hello = protocol.Hello(version=__version__, capabilities=["control", "commune"], receive_kbps=self.budget_kbps)
        await websocket.send(hello.model_dump_json())
        self.state.up = True
        beats = asyncio.create_task(
            send_heartbeats(websocket, protocol.Heartbeat, lambda: self._heartbeat, "the province"),
            name="uplink-heartbeats",
        )
        try:
            await read_until_stopped(websocket, self._handle, "province", stop, "commune coordinator stopping")
        finally:
            beats.cancel()
            self.state.up = False
            self._websocket = None
            await self._drop("control channel closed")  # the province drops its side with the session
        log.warning("uplink to the province closed (code %s %s)", websocket.close_code, websocket.close_reason or "")
        return 0.0

    async def send(self, message: BaseModel) -> bool:
        return await send_on(self._websocket, message)

    async def _handle(self, websocket: ClientConnection, message: protocol.AnyCoordinatorMessage) -> None:
        relayed = self.relayed
        if isinstance(message, protocol.Welcome):
            self._heartbeat = min(self._heartbeat, message.heartbeat_interval)
            log.info("province welcomes commune %s", message.room)
        elif isinstance(message, protocol.Command):
            await websocket.send((await self._obey(message)).model_dump_json())
        elif isinstance(message, protocol.Floor):
            if relayed.ref is not None and message.meeting == relayed.ref.id:
                await relayed.floor(message.room)
        elif isinstance(message, protocol.Answer):
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(message.sdp)
        elif isinstance(message, protocol.Publish):
            relayed.publish(message.video, message.audio)
        elif isinstance(message, protocol.ProgramPicture):
            relayed.set_picture(message.sent, message.reason)
        elif isinstance(message, protocol.ProgramQuality):
            log.info(
                "the province sends its program in the %s quality (%s)",
                "lower" if message.low else "higher",
                message.reason or "the link carries it",
            )
        else:
            log.warning("province reports an error (%s): %s", message.code, message.message)
            if message.code == "bad_offer" and self._answer is not None and not self._answer.done():
                self._answer.set_exception(RuntimeError(message.message))

    async def _obey(self, command: protocol.Command) -> protocol.Ack:
        log.info("province command %s: %s", command.id, command.action)
        if command.action == "join":
            if command.meeting is None:
                return protocol.Ack(command_id=command.id, ok=False, detail="join without a meeting")
            if self._peer is not None and self._peer.occurrence != command.meeting.occurrence:
                await self._drop("another province meeting")
            await self.relayed.join(command.meeting)
            self._joined = True
            self._wake.set()
        elif command.action == "leave":
            self._joined = False
            await self._drop("left the province meeting")
            await self.relayed.leave("left the province meeting")
        else:
            detail = f"commune coordinator: {command.action} is for rooms"
            return protocol.Ack(command_id=command.id, ok=True, detail=detail)
        return protocol.Ack(command_id=command.id)

    # --- media ------------------------------------------------------------------------

    async def _media(self, stop: asyncio.Event) -> None:
        """Keep one healthy peer while the commune is in a province meeting; tell the meeting when media flows."""
        while not stop.is_set():
            try:
                await self._reconcile()
            except Exception:
                log.exception("uplink media: unexpected error; trying again")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=MEDIA_TICK)

    async def _reconcile(self) -> None:
        ref = self.relayed.ref
        self.relayed.attach()
        peer = self._peer
        if peer is not None:
            reason = peer.dead()
            if reason is not None:
                log.warning("uplink media: peer unhealthy (%s); opening a new one", reason)
                await self._drop(reason)
        self.state.media_live = self._peer is not None and self._peer.live()
        self.relayed.set_live(self.state.media_live)
        if self._peer is None and ref is not None and self._joined and self._websocket is not None:
            await self._open(ref.occurrence)
        await self._report()

    async def _open(self, occurrence: int) -> None:
        peer = UplinkPeer(occurrence, self.relayed.inject, self.relayed.keyframe_wanted)
        self._peer = peer
        self.state.peers += 1
        self.relayed.new_peer()
        self._answer = asyncio.get_running_loop().create_future()
        try:
            answer = await negotiate(self.send, occurrence, await peer.offer(), self._answer, ANSWER_TIMEOUT)
        except NegotiationFailed as exc:
            if exc.refusal:
                log.error("uplink media: the province refused the offer: %s", exc.refusal)
            await self._drop(exc.reason)
            return
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return  # the peer was dropped while waiting (the control session ended)
        if self._peer is not peer:
            return
        await peer.accept(answer)
        log.info("uplink media: peer for province occurrence %s negotiated", occurrence)

    async def _drop(self, reason: str) -> None:
        peer, self._peer = self._peer, None
        if self._answer is not None and not self._answer.done():
            self._answer.cancel()
        if peer is not None:
            log.info("uplink media: closing the peer for occurrence %s (%s)", peer.occurrence, reason)
            await peer.close()
        self.relayed.set_live(False)
        self.state.media_live = False

    async def _report(self) -> None:
        status = protocol.MediaStatus(receiving=self.state.media_live)
        if status != self._last_status and await self.send(status):
            self._last_status = status

    # --- packets both ways --------------------------------------------------------------

    def _send_packet(self, kind: str, seq: int, ts: int, marker: int, payload: bytes) -> int:
        peer = self._peer
        return peer.send(kind, seq, ts, marker, payload) if peer is not None else 0

    def _program_keyframe(self) -> None:
        if self._peer is not None:
            self._peer.request_keyframe()
