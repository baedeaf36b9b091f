"""The control WebSocket refuses impostors and survives garbage, room by room."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from node_agent.config import AgentConfig
from node_agent.control import ControlClient
from node_agent.room import Room
from phonghop.protocol import CLOSE_REPLACED, CLOSE_TOKEN_REISSUED
from tests.harness import Agent, Coordinator, free_port, sample, wait_for

HELLO = json.dumps({"type": "hello", "version": "test", "devices": {"camera": True}})


async def _refusal(url: str, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, additional_headers=headers):
            pass
    response = info.value.response
    return response.status_code, json.loads(response.body)["error"]["message"]


async def _reply(ws: ClientConnection) -> dict[str, object]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout=5)))


async def test_impostors_are_refused_with_a_reason(coordinator: Coordinator) -> None:
    token_a = coordinator.enroll("tdp-01")
    coordinator.enroll("tdp-02")
    status, message = await _refusal(coordinator.ws_url("tdp-01"), None)
    assert status == 401
    assert "Authorization: Bearer" in message
    status, message = await _refusal(coordinator.ws_url("tdp-01"), "forged-token")
    assert status == 401
    assert "re-issue" in message
    status, message = await _refusal(coordinator.ws_url("tdp-02"), token_a)
    assert status == 403
    assert "belongs to room tdp-01" in message
    status, message = await _refusal(coordinator.ws_url("tdp-77"), "whatever")
    assert status == 404
    assert "not enrolled" in message
    metrics = coordinator.metrics()
    assert sample(metrics, "phonghop_control_rejected_total", reason="wrong_room") == 1
    assert sample(metrics, "phonghop_room_up", room="tdp-02", group="residential_group") == 0


async def test_garbage_gets_an_error_and_the_room_stays(
    coordinator: Coordinator, start_agent: Callable[..., Agent]
) -> None:
    start_agent("tdp-09")
    wait_for(
        lambda: sample(coordinator.metrics(), "phonghop_room_up", room="tdp-09", group="residential_group"),
        15,
        "tdp-09 up",
    )
    neighbour_connects = sample(coordinator.metrics(), "phonghop_room_connections_total", room="tdp-09")

    token = coordinator.enroll("tdp-01")
    async with connect(coordinator.ws_url("tdp-01"), additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send('{"type": "heartbeat"}')
        assert "send 'hello' first" in str((await _reply(ws))["message"])
        await ws.send(HELLO)
        welcome = await _reply(ws)
        assert welcome == {"type": "welcome", "room": "tdp-01", "heartbeat_interval": 0.5}
        garbage = {
            "{this is not json": "malformed JSON",
            '{"type": "reboot_everything"}': "unknown message type 'reboot_everything'",
            '{"type": "hello", "version": ""}': "hello.version",
            '{"type": "ack", "command_id": "c999"}': "no command 'c999'",
            json.dumps({"type": "heartbeat", "pad": "x" * 70_000}): "exceeds the 65536-byte limit",
        }
        for raw, fragment in garbage.items():
            await ws.send(raw)
            reply = await _reply(ws)
            assert reply["type"] == "error", reply
            assert fragment in str(reply["message"]), (raw[:40], reply)
        await ws.send(b"\x00\x01binary")
        assert "binary frames" in str((await _reply(ws))["message"])
        await ws.send('{"type": "heartbeat"}')
        metrics = coordinator.metrics()
        assert sample(metrics, "phonghop_room_up", room="tdp-01", group="residential_group") == 1
        assert sample(metrics, "phonghop_control_errors_total", room="tdp-01", reason="invalid") == 3
        assert sample(metrics, "phonghop_control_errors_total", room="tdp-01", reason="too_large") == 1
    # The other room never noticed.
    metrics = coordinator.metrics()
    assert sample(metrics, "phonghop_room_up", room="tdp-09", group="residential_group") == 1
    assert sample(metrics, "phonghop_room_connections_total", room="tdp-09") == neighbour_connects
    assert sample(metrics, "phonghop_control_errors_total", room="tdp-09", reason="invalid") is None


async def test_second_connection_replaces_the_first(coordinator: Coordinator) -> None:
    token = coordinator.enroll("tdp-01")
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(coordinator.ws_url("tdp-01"), additional_headers=headers) as first:
        await first.send(HELLO)
        await _reply(first)
        async with connect(coordinator.ws_url("tdp-01"), additional_headers=headers) as second:
            await second.send(HELLO)
            await _reply(second)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(first.recv(), timeout=5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == CLOSE_REPLACED
            await second.send('{"type": "heartbeat"}')
            await asyncio.sleep(0.3)
            assert sample(coordinator.metrics(), "phonghop_room_up", room="tdp-01", group="residential_group") == 1
    assert "replaces the one from" in coordinator.log.read_text()


async def test_reissued_token_cuts_the_old_one_off(coordinator: Coordinator) -> None:
    old = coordinator.enroll("tdp-01")
    async with connect(coordinator.ws_url("tdp-01"), additional_headers={"Authorization": f"Bearer {old}"}) as ws:
        await ws.send(HELLO)
        await _reply(ws)
        with coordinator.api() as api:
            assert api.post("/api/v1/rooms/tdp-01/token").status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CLOSE_TOKEN_REISSUED
    status, _ = await _refusal(coordinator.ws_url("tdp-01"), old)
    assert status == 401


async def test_an_agent_still_dialling_stops_at_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SIGTERM while the coordinator is unreachable: the agent does not wait for a connection to stop."""
    (tmp_path / "room.token").write_text("token\n")
    config = AgentConfig(
        room="tdp-01",
        coordinator_url=f"http://127.0.0.1:{free_port()}",
        token_file=tmp_path / "room.token",
        reconnect_initial_delay=0.1,
    )
    client = ControlClient(config, tmp_path / "agent.toml", Room("tdp-01"))
    stop = asyncio.Event()
    running = asyncio.create_task(client.run(stop))
    caplog.set_level(logging.INFO, logger="websockets.client")
    while not any("reconnecting" in record.getMessage() for record in caplog.records):
        assert not running.done()
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, 2)
