"""SIGTERM and SIGINT stop a real agent process within seconds, whatever it is doing.

systemd waits for its stop timeout and then kills; the demo and a technician's
Ctrl-C wait too. Each test puts the agent in one state, signals it and
measures how long it takes to exit (the target is 2 s; the asserts leave room
for a loaded test machine, the printed figures are the measurement).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import Agent, Coordinator, free_port, sample, wait_for

SIGNALS = pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
LIMIT = 5.0  # seconds; the target is 2


def _stopped_in(agent: Agent, sig: int, state: str) -> tuple[int, float]:
    """Signal the agent and wait for it to exit; (exit code, seconds)."""
    assert agent.proc is not None
    assert agent.proc.poll() is None, f"agent exited before the signal:\n{agent.log.read_text()[-3000:]}"
    started = time.monotonic()
    agent.send(sig)
    try:
        code = agent.proc.wait(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        agent.proc.kill()
        agent.proc.wait()
        raise AssertionError(
            f"{signal.Signals(sig).name} {state}: still running after {LIMIT} s:\n{agent.log.read_text()[-3000:]}"
        ) from None
    took = time.monotonic() - started
    print(f"MEASURED {signal.Signals(sig).name} {state}: exit {code} in {took:.2f} s")
    return code, took


def _unreachable(tmp_path: Path, extra: str = "", local_api: bool = False) -> Agent:
    """An agent whose coordinator is a closed port (with the default back-off, up to 30 s between tries)."""
    url = f"http://127.0.0.1:{free_port()}"
    agent = Agent(url, "tdp-01", "ma-phong", tmp_path / "tdp-01", extra, free_port() if local_api else 0)
    config = agent.config.read_text()
    agent.config.write_text(config.replace("reconnect_max_delay = 1.0", "reconnect_max_delay = 30.0"))
    return agent.start()


@SIGNALS
def test_stops_while_still_dialling_a_closed_port(tmp_path: Path, sig: int) -> None:
    agent = _unreachable(tmp_path, local_api=True)
    wait_for(lambda: agent.log.read_text().count("reconnecting in") >= 4, 60, "the agent to have retried a while")
    with agent.local() as local:
        assert local.get("/status").json()["connected"] is False
    code, _ = _stopped_in(agent, sig, "while dialling a closed port")
    assert code == 0
    assert "agent stopped" in agent.log.read_text()


# The biggest test picture takes seconds to pre-encode, on the event loop before it takes signals.
BIG_PICTURE = "[test_source]\nwidth = 1920\nheight = 1080\nfps = 30\nbitrate = 4000000\n"


@SIGNALS
def test_stops_while_preparing_the_test_picture(tmp_path: Path, sig: int) -> None:
    agent = _unreachable(tmp_path, BIG_PICTURE)
    wait_for(lambda: "agent for room tdp-01 starting" in agent.log.read_text(), 60, "the start of the agent's parts")
    code, _ = _stopped_in(agent, sig, "while pre-encoding the test picture")
    log = agent.log.read_text()
    assert code == 0, log[-3000:]
    assert "while starting: stopped" in log
    assert "Traceback" not in log


def _loaded(agent: Agent, library: str) -> bool:
    assert agent.proc is not None
    return library in Path(f"/proc/{agent.proc.pid}/maps").read_text()


@SIGNALS
def test_stops_while_importing(tmp_path: Path, sig: int) -> None:
    """Mid-imports: PyAV's libraries are loaded, aiortc and the rest still to come (about a second)."""
    agent = _unreachable(tmp_path)
    wait_for(lambda: _loaded(agent, "av.libs/libavcodec"), 60, "the agent importing PyAV", interval=0.01)
    code, _ = _stopped_in(agent, sig, "while importing")
    log = agent.log.read_text()
    assert code == 0, log[-3000:]
    assert "while starting: stopped" in log
    assert "Traceback" not in log


def test_stops_in_a_meeting_with_the_tv_and_the_local_api(
    coordinator: Coordinator, start_agent: Callable[..., Agent]
) -> None:
    """Connected, in a meeting, media flowing, the TV composing, a local API client connected."""
    tv = "[display]\nenabled = true\nfullscreen = false\nupload_seconds = 1\n"
    chair = start_agent("ubnd", "hall", tv, local_api_port=free_port(), env={"SDL_VIDEODRIVER": "dummy"})
    room = start_agent("tdp-01", extra=tv, local_api_port=free_port(), env={"SDL_VIDEODRIVER": "dummy"})
    meeting = coordinator.schedule(["tdp-01"])
    for agent in (room, chair):
        wait_for(
            lambda agent=agent: (
                sample(coordinator.metrics(), "phonghop_room_in_meeting", room=agent.room_id, meeting=str(meeting)) == 1
            ),
            60,
            f"{agent.room_id} in the meeting",
        )
    with room.local() as local, chair.local() as chair_local:
        assert local.get("/status").json()["meeting"] is not None  # a kept-alive connection to each local API
        assert chair_local.get("/screen.png").status_code == 200
        code, _ = _stopped_in(room, signal.SIGTERM, "in a meeting, TV and local API running")
        assert code == 0
        code, _ = _stopped_in(chair, signal.SIGINT, "chairing a meeting, TV and local API running")
        assert code == 0
    for agent in (room, chair):
        log = agent.log.read_text()
        assert "stopping (signal)" in log
        assert "Traceback" not in log
