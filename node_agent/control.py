"""The control channel to the coordinator: dial out, say hello, heartbeat, obey.

Reconnection is ``phonghop.dialing`` (shared with a commune's uplink); this
module says hello, keeps the heartbeat and obeys the coordinator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from node_agent.config import AgentConfig, ConfigError, load_config
from node_agent.media import MediaManager
from node_agent.room import Room
from node_agent.selftest import LiveState, run_checks
from phonghop import __version__
from phonghop.dialing import dial, read_until_stopped, send_heartbeats, send_on, stay_connected
from phonghop.protocol import (
    CLOSE_REPLACED,
    DEVICE_NAMES,
    Ack,
    Answer,
    AnyCoordinatorMessage,
    Command,
    Floor,
    Heartbeat,
    Hello,
    ProgramPicture,
    ProgramQuality,
    Publish,
    Welcome,
)

log = logging.getLogger(__name__)


class ControlClient:
    def __init__(self, config: AgentConfig, config_path: Path, room: Room) -> None:
        self.config = config
        self.config_path = config_path
        self.media: MediaManager | None = None
        # Told about a config re-read (after the control client took what it needs from it).
        self.on_reload: Callable[[AgentConfig], None] | None = None
        # The agent's live view of its devices: name -> (working, what is wrong); None: config only.
        self.device_report: Callable[[], dict[str, tuple[bool, str | None]]] | None = None
        self._checks: set[asyncio.Task[None]] = set()
        self._websocket: ClientConnection | None = None
        self.room = room
        self.heartbeat_interval = config.heartbeat_interval

    def device_states(self) -> dict[str, tuple[bool, str | None]]:
        """Each device's state, with the test source's ``missing_devices`` reported as missing."""
        states = dict(self.device_report()) if self.device_report is not None else {}
        if self.device_report is None:
            states = {name: (True, None) for name in DEVICE_NAMES}
        for name in self.config.test_source.missing_devices:
            states[name] = (False, "thiết bị được cấu hình là vắng (test_source.missing_devices)")
        return states

    def devices(self) -> dict[str, bool]:
        return {name: ok for name, (ok, _) in self.device_states().items()}

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set."""
        await stay_connected(self._dial, partial(self._session, stop=stop), stop, self.config.reconnect_max_delay)

    def _dial(self) -> connect | None:
        try:
            token = self.config.read_token()
        except ConfigError as exc:
            log.error("%s", exc)
            return None
        return dial(
            self.config.control_url,
            token,
            f"phonghop-agent/{__version__}",
            self.config.reconnect_initial_delay,
            self.config.reconnect_max_delay,
            self.config.ca_file,
        )

    async def _session(self, websocket: ClientConnection, stop: asyncio.Event) -> float:
        log.info("control channel open to %s", self.config.control_url)
        self.room.connected = True
        self._websocket = websocket
        if self.media is not None:
            self.media.on_reconnect()  # before anything can be sent on this session
        await websocket.send(
            Hello(
                version=__version__,
                capabilities=["control"],
                devices=self.devices(),
                receive_kbps=self.config.media.receive_kbps,
            ).model_dump_json()
        )
        heartbeats = asyncio.create_task(
            send_heartbeats(
                websocket, lambda: Heartbeat(devices=self.devices()), lambda: self.heartbeat_interval, "the coordinator"
            ),
            name="heartbeats",
        )
        try:
            await read_until_stopped(websocket, self._handle, "coordinator", stop, "agent stopping")
        finally:
            self.room.connected = False
            self._websocket = None
            heartbeats.cancel()
        code, reason = websocket.close_code, websocket.close_reason
        if stop.is_set():
            return 0.0
        log.warning("control channel closed (code %s%s)", code, f": {reason}" if reason else "")
        if code == CLOSE_REPLACED:
            log.error(
                "another agent connected as room %s; is the same config on two laptops?",
                self.room.room_id,
            )
            return self.config.reconnect_max_delay
        return 0.0

    async def send(self, message: BaseModel) -> bool:
        """Send on the control channel if it is up; False when it is not."""
        return await send_on(self._websocket, message)

    async def _handle(self, websocket: ClientConnection, message: AnyCoordinatorMessage) -> None:
        if isinstance(message, Welcome):
            self.heartbeat_interval = min(self.config.heartbeat_interval, message.heartbeat_interval)
            log.info(
                "coordinator welcomes room %s; heartbeat every %.1f s",
                message.room,
                self.heartbeat_interval,
            )
        elif isinstance(message, Command) and message.action == "run_check":
            # The self-test takes seconds (it sends media through the coordinator): answer when done,
            # without holding up the commands behind it.
            task = asyncio.create_task(self._run_check(websocket, message.id), name="run-check")
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)
        elif isinstance(message, Command):
            ack = await self._obey(message)
            await websocket.send(ack.model_dump_json())
            if message.action in ("join", "leave") and self.media is not None:
                self.media.on_duty()  # after the ack, so that the coordinator knows we joined
        elif isinstance(message, Floor):
            self.room.set_floor(message.meeting, message.room)
        elif isinstance(message, Answer):
            if self.media is not None:
                self.media.on_answer(message)
        elif isinstance(message, Publish):
            if self.media is not None:
                self.media.on_publish(message)
        elif isinstance(message, ProgramPicture):
            log.info(
                "coordinator %s the program picture (%s)", "sends" if message.sent else "holds back", message.reason
            )
        elif isinstance(message, ProgramQuality):
            self.room.weak_link = message.reason or "mạng yếu" if message.low else None
            log.info("program picture in the %s quality (%s)", "lower" if message.low else "higher", message.reason)
        else:
            log.warning("coordinator reports an error (%s): %s", message.code, message.message)
            if message.code == "bad_offer" and self.media is not None:
                self.media.on_refusal(message.message)

    async def _obey(self, command: Command) -> Ack:
        log.info("command %s: %s", command.id, command.action)
        if command.action == "join":
            if command.meeting is None:
                return Ack(command_id=command.id, ok=False, detail="join without a meeting")
            await self.room.join(command.meeting)
        elif command.action == "leave":
            await self.room.leave()
        elif command.action == "reload_config":
            return Ack(command_id=command.id, **self._reload())
        return Ack(command_id=command.id)

    def _reload(self) -> dict[str, Any]:
        """Re-read the config file; the room id is fixed for the life of the process."""
        try:
            fresh = load_config(self.config_path)
        except ConfigError as exc:
            return {"ok": False, "detail": f"kept the old config: {exc}"}
        if fresh.room != self.config.room:
            return {"ok": False, "detail": f"room id changed to {fresh.room}: restart the agent to change rooms"}
        self.config = fresh
        if self.on_reload is not None:
            self.on_reload(fresh)
        self.heartbeat_interval = min(self.heartbeat_interval, fresh.heartbeat_interval)
        log.info("config reloaded from %s", self.config_path)
        return {"ok": True, "detail": "config reloaded"}

    async def _run_check(self, websocket: ClientConnection, command_id: str) -> None:
        """The same checks as ``phonghop-agent check``, with the devices as this agent sees them."""
        live = LiveState(connected=True, devices=self.device_states())
        try:
            report = await run_checks(self.config_path, live)
            failed = [c.name for c in report.checks if not c.ok]
            detail = "tất cả đạt" if not failed else "lỗi: " + ", ".join(failed)
            ack = Ack(command_id=command_id, ok=report.ok, detail=detail, checks=report.checks)
        except Exception as exc:
            log.exception("self-test failed to run")
            ack = Ack(command_id=command_id, ok=False, detail=f"self-test could not run: {exc}"[:2000])
        log.info("self-test for the coordinator: %s", ack.detail)
        with contextlib.suppress(ConnectionClosed):
            await websocket.send(ack.model_dump_json())
