"""`phonghop-agent run`: the parts of a room agent, started together and stopped cleanly.

Under systemd (``Type=notify``) the agent says READY=1 once its parts run
(connected or still trying), pings the watchdog from its event loop, and says
STOPPING=1 on SIGTERM (or SIGINT) before closing the meeting's peer and the
control channel; parts that take longer than ``STOP_GRACE`` are cancelled, and
it exits 0. A signal before the parts run abandons the start (``signals``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node_agent import systemd
from node_agent.config import AgentConfig, ConfigError, load_config
from node_agent.control import ControlClient
from node_agent.local_auth import SecretError, create_secret
from node_agent.media import MediaManager, Sinks
from node_agent.room import Outcome, Room
from node_agent.signals import STOP_SIGNALS
from node_agent.sound import Speaker
from node_agent.sources import TEST_CHOICES, RoomSource
from phonghop.logs import setup_logging
from phonghop.protocol import GiveFloor, Hand

if TYPE_CHECKING:
    from node_agent.testsource import CodeReader, TestDevices
    from node_agent.tv import Television

log = logging.getLogger("node_agent")

# How long the parts may take to stop cleanly (close the meeting's peer and the control channel).
STOP_GRACE = 1.2


class Agent:
    """The room agent's parts; what the local API may do with them is ``local_api.RoomAgent``."""

    def __init__(self, config: AgentConfig, config_path: Path) -> None:
        self.config = config
        self.room = Room(config.room)
        self.control = ControlClient(config, config_path, self.room)
        self.source: RoomSource | None = None
        self.test_devices: TestDevices | None = None  # when devices are set to the test source
        self.codes: CodeReader | None = None  # what a simulated room that decodes receives
        self.speaker: Speaker | None = None
        self.tv: Television | None = None
        self.stop = asyncio.Event()

    # --- for the local API ------------------------------------------------------

    @property
    def room_id(self) -> str:
        return self.room.room_id

    @property
    def connected(self) -> bool:
        return self.room.connected

    def status(self) -> dict[str, Any]:
        control = self.control
        media = control.media.status().model_dump() if control.media is not None else None
        devices = {name: {"ok": ok, "problem": problem} for name, (ok, problem) in control.device_states().items()}
        status = {**self.room.status(), "media": media, "devices": devices}
        if self.codes is not None:
            status["decoded"] = self.codes.decoded()
        return status

    def screen_png(self) -> bytes | None:
        return self.tv.to_png() if self.tv is not None else None

    async def set_hand(self, raised: bool) -> Outcome:
        if self.room.meeting is None:
            return "not_in_meeting"
        if not await self.control.send(Hand(raised=raised)):
            return "offline"
        self.room.hand_raised = raised
        return "sent"

    async def give_floor(self, room: str | None) -> Outcome:
        if self.room.meeting is None or self.room.meeting.chair != self.room.room_id:
            return "not_chair"
        return "sent" if await self.control.send(GiveFloor(room=room)) else "offline"

    def set_device_fault(self, device: str, broken: bool) -> bool:
        if self.test_devices is None or self.config.device_choice(device) not in TEST_CHOICES:
            return False
        if broken:
            self.test_devices.faults.broken.add(device)
        else:
            self.test_devices.faults.broken.discard(device)
        return True

    # --- running ----------------------------------------------------------------

    def device_report(self) -> dict[str, tuple[bool, str | None]]:
        """Each device's state as the heartbeat and the self-test report it."""
        report: dict[str, tuple[bool, str | None]] = {}
        if self.source is not None:
            report["camera"] = (self.source.video.ok, self.source.video.problem)
            report["microphone"] = (self.source.audio.ok, self.source.audio.problem)
        if self.speaker is not None:
            self.speaker.check()
            report["speaker"] = (self.speaker.ok, self.speaker.problem)
        tv = self.tv
        if tv is not None:
            report["display"] = (tv.ok, tv.problem)
            tv.device_problems = {
                name: {"camera": "Mất camera", "microphone": "Mất micro", "speaker": "Mất loa"}[name]
                for name, (ok, _) in report.items()
                if not ok and name != "display"
            }
        elif self.config.test_source.enabled:
            report["display"] = (True, None)
        return report

    def _token(self) -> str | None:
        try:
            return self.config.read_token()
        except ConfigError:
            return None

    async def run(self) -> int:
        config, control = self.config, self.control
        log.info("agent for room %s starting; coordinator %s", config.room, config.coordinator_url)
        tasks = [asyncio.create_task(control.run(self.stop), name="control")]
        control.device_report = self.device_report
        decode = config.media.decode or config.display.enabled
        sinks = Sinks()
        if config.display.enabled:
            from node_agent.tv import Television  # pygame and its window only where there is a TV

            tv = Television(config, self.room)
            self.tv = tv
            sinks.video.append(tv.on_video)
            tasks.append(asyncio.create_task(tv.run(self.stop, self._token), name="tv"))
        if config.media.enabled:
            tasks.extend(self._media(decode, sinks))
        if config.local_api_port:
            tasks.extend(self._local_api())
        tasks.append(asyncio.create_task(systemd.watchdog(self.stop), name="watchdog"))
        # Every part runs: from here a signal stops them cleanly (until here it abandons the start).
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._stopping)
        systemd.notify(f"READY=1\nSTATUS=room {config.room}: connecting to {config.coordinator_url}")
        results = await self._until_stopped(tasks)
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("%s stopped with an error: %r", task.get_name(), result)
        log.info("agent stopped")
        return 0

    async def _until_stopped(self, tasks: list[asyncio.Task[Any]]) -> list[Any]:
        """The parts' results; once ``stop`` is set, the parts get STOP_GRACE seconds, then are cancelled.

        A part can be waiting on the network when the stop comes (closing the control channel or the
        meeting's peer, a TV upload to a coordinator that does not answer): systemd, the demo and a
        technician's Ctrl-C all need the agent gone within seconds regardless.
        """
        everything = asyncio.gather(*tasks, return_exceptions=True)
        stopping = asyncio.create_task(self.stop.wait(), name="stopping")
        first: set[asyncio.Future[Any]] = {everything, stopping}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not everything.done():
            _, late = await asyncio.wait(tasks, timeout=STOP_GRACE)
            for task in late:
                log.warning("%s did not stop within %.1f s: cancelled", task.get_name(), STOP_GRACE)
                task.cancel()
        return await everything

    def _local_api(self) -> list[asyncio.Task[Any]]:
        """The local API with a new secret; without one the room still meets, and the log says why."""
        from node_agent.local_api import local_server  # FastAPI costs a third of a second to import

        config = self.config
        try:
            secret = create_secret(config.local_api_secret_path)
        except SecretError as exc:
            log.error("local API off: %s", exc)
            return []
        server, stop_server = local_server(self, config.debug, config.local_api_port, secret)
        stop_task = asyncio.create_task(self.stop.wait(), name="local-api-stop")
        stop_task.add_done_callback(lambda _: stop_server())
        return [asyncio.create_task(server.serve(), name="local-api"), stop_task]

    def _media(self, decode: bool, sinks: Sinks) -> list[asyncio.Task[None]]:
        """The camera and microphone (or the test source), the speaker, and the meeting's peer."""
        config, control = self.config, self.control
        if any(config.device_choice(kind) in TEST_CHOICES for kind in ("camera", "microphone")):
            from node_agent.testsource import CodeReader, TestDevices

            test = self.test_devices = TestDevices(config)
            control.on_reload = lambda fresh: test.set_talking(fresh.test_source.talking)
            if decode:
                self.codes = CodeReader()
                sinks.video.append(self.codes.on_video)
                sinks.audio.append(self.codes.on_audio)
        self.source = RoomSource(config, test=self.test_devices)
        self.speaker = Speaker(config.device_choice("speaker"), config.devices.retry_seconds, lambda: None)
        tasks = [asyncio.create_task(self.source.run(self.stop), name="devices")]
        if decode:
            sinks.audio.append(self.speaker.feed)
            tasks.append(asyncio.create_task(self.speaker.run(self.stop), name="speaker"))
        control.media = MediaManager(self.room, self.source, decode, control.send, sinks)
        tasks.append(asyncio.create_task(control.media.run(self.stop), name="media"))
        return tasks

    def _stopping(self) -> None:
        if not self.stop.is_set():
            log.info("stopping (signal)")
            systemd.notify("STOPPING=1")
            self.stop.set()


async def run(config_path: Path) -> int:
    config = load_config(config_path)
    setup_logging(config.log_level, "agent", config.room, with_meeting=True)
    agent = Agent(config, config_path)
    with contextlib.suppress(asyncio.CancelledError):
        return await agent.run()
    return 0
