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
from tests.harness import Agent, Coordinator, free_port, sample, until, wait_for

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
        metrics = await until(
            lambda: (
                sample(m := coordinator.metrics(), "phonghop_room_up", room="tdp-01", group="residential_group") == 1
                and m
            ),
            5,
            "tdp-01 up after its heartbeat",
        )
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
            assert await until(
                lambda: sample(coordinator.metrics(), "phonghop_room_up", room="tdp-01", group="residential_group"),
                5,
                "tdp-01 up on its second connection",
            )
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


async def _command(ws: ClientConnection) -> dict[str, object]:
    """The next command the coordinator sends (skipping floor, publish and the like)."""
    while True:
        message = await _reply(ws)
        if message["type"] == "command":
            return message


async def test_a_room_answers_only_its_own_commands(coordinator: Coordinator) -> None:
    tokens = {room: coordinator.enroll(room) for room in ("tdp-01", "tdp-02")}
    coordinator.enroll("ubnd", "hall")
    async with (
        connect(coordinator.ws_url("tdp-01"), additional_headers={"Authorization": f"Bearer {tokens['tdp-01']}"}) as a,
        connect(coordinator.ws_url("tdp-02"), additional_headers={"Authorization": f"Bearer {tokens['tdp-02']}"}) as b,
    ):
        for ws in (a, b):
            await ws.send(HELLO)
            await _reply(ws)
        beats = [asyncio.create_task(_heartbeats(ws)) for ws in (a, b)]
        meeting = coordinator.schedule(["tdp-02"])
        join = await _command(b)
        assert join["action"] == "join"
        command_id = str(join["id"])

        # tdp-01 answers tdp-02's command, even knowing its id: refused, and tdp-02's command still waits.
        await a.send(json.dumps({"type": "ack", "command_id": command_id}))
        assert "no command" in str((await _reply(a))["message"])
        await b.send(json.dumps({"type": "ack", "command_id": command_id}))
        await until(lambda: _joined(coordinator, meeting) == ["tdp-02"], 5, "tdp-02 joined")

        # The operator's self-test command to tdp-02 is answered by tdp-02 alone.
        with coordinator.api() as api:
            asked = asyncio.create_task(
                asyncio.to_thread(
                    api.post, "/api/v1/rooms/tdp-02/commands", json={"action": "run_check", "timeout_seconds": 5}
                )
            )
            check = await _command(b)
            await a.send(json.dumps({"type": "ack", "command_id": check["id"], "ok": True, "detail": "forged"}))
            assert "no command" in str((await _reply(a))["message"])
            await b.send(json.dumps({"type": "ack", "command_id": check["id"], "ok": True, "detail": "tdp-02 ok"}))
            response = await asyncio.wait_for(asked, 10)
        for beat in beats:
            beat.cancel()
    assert response.status_code == 200, response.text
    assert response.json()["detail"] == "tdp-02 ok"
    assert len(command_id) >= 16, "command ids must not be guessable"


async def _heartbeats(ws: ClientConnection) -> None:
    while True:
        await ws.send('{"type": "heartbeat"}')
        await asyncio.sleep(0.2)


def _joined(coordinator: Coordinator, meeting: int) -> list[str]:
    with coordinator.api() as api:
        running = api.get(f"/api/v1/meetings/{meeting}").json()["running"]
    return list(running["joined"]) if running else []


async def test_an_agent_still_dialling_stops_at_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SIGTERM while the coordinator is unreachable: the agent does not wait for a connection to stop."""
    (tmp_path / "room.token").write_text("token\n")
    config = AgentConfig(
        room="tdp-01",
        coordinator_url=f"http://127.0.0.1:{free_port()}",
        allow_plain_http=True,
        token_file=tmp_path / "room.token",
        reconnect_initial_delay=0.1,
    )
    client = ControlClient(config, tmp_path / "agent.toml", Room("tdp-01"))
    stop = asyncio.Event()
    running = asyncio.create_task(client.run(stop))
    caplog.set_level(logging.INFO, logger="websockets.client")
    await until(lambda: any("reconnecting" in r.getMessage() for r in caplog.records), 10, "the agent to redial")
    assert not running.done()
    stop.set()
    await asyncio.wait_for(running, 2)
