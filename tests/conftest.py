from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

logging.getLogger("httpx").setLevel(logging.WARNING)

from tests.harness import Agent, Coordinator


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    coord = Coordinator(tmp_path / "coordinator").start()
    yield coord
    coord.stop()


@pytest.fixture
def start_agent(coordinator: Coordinator, tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """Enroll a room and start its agent process."""
    agents: list[Agent] = []

    def start(room_id: str, group: str = "residential_group", extra: str = "") -> Agent:
        token = coordinator.enroll(room_id, group)
        agent = Agent(coordinator, room_id, token, tmp_path / "rooms" / room_id, extra).start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.send(signal.SIGCONT)
        agent.stop()
