from __future__ import annotations

import logging
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import Agent, Coordinator
from tests.postgres import PostgresServer

logging.getLogger("httpx").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # Not under pytest's own temporary folder: every new pytest session on the machine resets that
    # folder to mode 0700, and the server (running as the postgres user) then loses its data directory.
    with tempfile.TemporaryDirectory(prefix="phonghop-postgres-") as folder:
        server = PostgresServer(Path(folder)).start()
        yield server
        server.stop()


@pytest.fixture
def coordinator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Coordinator]:
    """A coordinator process on SQLite, or on the backends a test names with ``BOTH_DATABASES``."""
    backend = getattr(request, "param", "sqlite")
    env = {}
    if backend == "postgresql":
        env["PHONGHOP_DATABASE_URL"] = request.getfixturevalue("postgres").new_database()
    coord = Coordinator(tmp_path / "coordinator", env).start()
    yield coord
    coord.stop()


@pytest.fixture
def start_agent(coordinator: Coordinator, tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """Enroll a room and start its agent process."""
    agents: list[Agent] = []

    def start(
        room_id: str,
        group: str = "residential_group",
        extra: str = "",
        local_api_port: int = 0,
        env: dict[str, str] | None = None,
    ) -> Agent:
        token = coordinator.enroll(room_id, group)
        folder = tmp_path / "rooms" / room_id
        agent = Agent(coordinator, room_id, token, folder, extra, local_api_port, env).start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        if agent.proc is not None and agent.proc.poll() is None:
            agent.send(signal.SIGCONT)
        agent.stop()
