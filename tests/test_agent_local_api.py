"""The agent's local API answers only local tools: a loopback Host and the secret from the agent's file."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent.config import load_config
from node_agent.selftest import live_state_from_local_api
from tests.harness import Agent, free_port, wait_for


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    """A room agent whose coordinator is not there: its local API runs all the same."""
    room = Agent(f"http://127.0.0.1:{free_port()}", "tdp-01", "ma-phong", tmp_path / "tdp-01", "", free_port())
    room.start()
    yield room
    room.stop()


def test_a_web_page_cannot_raise_the_hand_or_read_the_status(agent: Agent) -> None:
    """What a page in the laptop's browser can send: a cross-origin request, without the secret."""
    page = {"Origin": "https://trang-la.example", "Content-Type": "text/plain"}
    with agent.local(authorized=False) as local:
        for method, path in (("POST", "/hand"), ("DELETE", "/hand"), ("PUT", "/floor"), ("GET", "/status")):
            refused = local.request(method, path, headers=page, content=b'{"room": "tdp-01"}')
            assert refused.status_code == 403, (method, path, refused.text)
            assert "Authorization: Bearer" in refused.json()["error"]
        wrong = local.get("/status", headers={"Authorization": "Bearer doan-bua"})
        assert wrong.status_code == 403
        assert local.get("/screen.png").status_code == 403


def test_dns_rebinding_is_refused_even_with_the_secret(agent: Agent) -> None:
    """A page on a name that re-resolves to 127.0.0.1 sends its own name as the Host."""
    for authorized in (False, True):
        with agent.local(authorized) as client:
            for host in ("rebind.example", "rebind.example:8765", "127.0.0.1.rebind.example", "localhost.example"):
                for method, path in (("GET", "/status"), ("PUT", "/floor"), ("POST", "/hand"), ("GET", "/healthz")):
                    refused = client.request(method, path, headers={"Host": host}, json={"room": None})
                    assert refused.status_code == 421, (authorized, host, method, path, refused.text)
                    assert "is not this machine" in refused.json()["error"]


def test_local_tools_with_the_secret_and_a_loopback_host(agent: Agent) -> None:
    assert agent.local_api is not None
    port = agent.local_api.rsplit(":", 1)[1]
    with agent.local() as local:
        for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
            status = local.get("/status", headers={"Host": host})
            assert status.status_code == 200, (host, status.text)
            assert status.json()["room"] == "tdp-01"
        # Past the gate, the API's own answers: no meeting, so no hand.
        assert local.post("/hand").status_code == 409
    mode = stat.S_IMODE(agent.secret_file.stat().st_mode)
    assert mode == 0o600, oct(mode)


def test_every_start_makes_a_new_secret(agent: Agent) -> None:
    with agent.local() as local:
        before = agent.secret_file.read_text()
        assert local.get("/status").status_code == 200
    agent.stop()
    agent.start()
    wait_for(lambda: agent.secret_file.read_text() != before, 60, "a new secret")
    with agent.local() as local:
        assert local.get("/status").status_code == 200
        assert local.get("/status", headers={"Authorization": f"Bearer {before.strip()}"}).status_code == 403


def test_the_self_test_reads_the_running_agent_with_the_secret(agent: Agent) -> None:
    """`phonghop-agent check` asks the running agent for its devices (the agent holds them)."""
    with agent.local():
        pass  # the agent serves its local API
    live = asyncio.run(live_state_from_local_api(load_config(agent.config)))
    assert live is not None
    assert live.devices["camera"][0] is True
    agent.secret_file.unlink()
    assert asyncio.run(live_state_from_local_api(load_config(agent.config))) is None
