"""Real processes for the tests: a coordinator and room agents on loopback."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from phonghop.testpattern import room_with_code, room_with_tone

ROOT = Path(__file__).resolve().parent.parent

FAST = {
    "PHONGHOP_HEARTBEAT_INTERVAL": "0.5",
    "PHONGHOP_MISSED_HEARTBEATS": "3",
    "PHONGHOP_SCHEDULER_TICK": "0.2",
    # No readiness self-tests unless a test asks for them (each one sends media through the coordinator).
    "PHONGHOP_READINESS_LEAD_SECONDS": "0",
    "PHONGHOP_READINESS_FINAL_LEAD_SECONDS": "0",
}


# For the tests where the database matters (the API, restarts, history): run them on each backend.
BOTH_DATABASES = pytest.mark.parametrize("coordinator", ["sqlite", "postgresql"], indirect=True)


# Ports for the tests' servers, below the kernel's range for outgoing connections (32768-60999): a port
# the kernel hands out itself could be taken by some client's connection before the server that was
# given it binds it (a room's local API once lost its port that way). Each port is given out once.
_PORTS = iter(random.Random(os.getpid()).sample(range(20000, 32768), 12768))


def free_port() -> int:
    for port in _PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left below 32768 for the tests' servers")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until ``predicate`` returns something truthy; fail with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error})")


def holds(predicate: Callable[[], Any], seconds: float, what: str, interval: float = 0.2) -> None:
    """Check that ``predicate`` stays truthy for ``seconds`` (for what must not happen); fail at the first lapse."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), f"{what} stopped holding after {seconds - (deadline - time.monotonic()):.1f} s"
        time.sleep(interval)


async def until(predicate: Callable[[], Any], within: float, what: str, interval: float = 0.05) -> Any:
    """``wait_for`` for tests that run their peers on the test's own event loop."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@contextmanager
def small_disk(folder: Path, size: str = "8M") -> Iterator[Path]:
    """A disk of its own, ``size`` big (an ext4 image on a loop device), mounted at ``folder`` until the end."""
    image = folder.with_suffix(".img")
    folder.mkdir(parents=True)
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 15) -> int | None:
    """Send ``sig`` and wait; kill what does not stop in time. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Coordinator:
    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        ca_file: Path | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """``prefix`` goes in front of the coordinator's command (e.g. to run it behind a network link)."""
        self.data_dir = data_dir
        self.prefix = list(prefix)
        self.port = free_port()
        self.ca_file = ca_file
        self.verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        self.url = f"{'https' if ca_file else 'http'}://127.0.0.1:{self.port}"
        self.env = {**os.environ, **FAST, "PHONGHOP_DATA_DIR": str(data_dir), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "coordinator.log"
        self.database_url = self.env.get("PHONGHOP_DATABASE_URL") or f"sqlite:///{data_dir / 'coordinator.db'}"

    def start(self) -> Coordinator:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "coordinator", "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
            )
        wait_for(self._ready, 120, f"the coordinator on {self.url} to be ready")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"coordinator exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        return httpx.get(f"{self.url}/readyz", timeout=1, verify=self.verify).status_code == 200

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig)

    @property
    def operator_token(self) -> str:
        return (self.data_dir / "operator.token").read_text().strip()

    def api(self, token: str | None = "operator") -> httpx.Client:
        headers = {}
        if token == "operator":
            headers["Authorization"] = f"Bearer {self.operator_token}"
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, verify=self.verify)

    def enroll(self, room_id: str, group: str = "residential_group", name: str | None = None) -> str:
        with self.api() as api:
            response = api.post("/api/v1/rooms", json={"id": room_id, "name": name or room_id, "group": group})
            assert response.status_code == 201, response.text
            return str(response.json()["token"])

    def schedule(
        self,
        rooms: list[str],
        groups: list[str] | None = None,
        start_in: float = 0,
        seconds: int = 600,
        title: str = "Giao ban tuần",
    ) -> int:
        """A meeting chaired by ubnd, starting ``start_in`` seconds from now; returns its id."""
        with self.api() as api:
            response = api.post(
                "/api/v1/meetings",
                json={
                    "title": title,
                    "chair_room": "ubnd",
                    "invited_rooms": rooms,
                    "invited_groups": groups or [],
                    "start": (datetime.now(UTC) + timedelta(seconds=start_in)).isoformat(),
                    "duration_seconds": seconds,
                },
            )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def add_user(self, name: str, role: str, password: str) -> subprocess.CompletedProcess[str]:
        """Create a web user with the coordinator's own CLI (password on stdin)."""
        return subprocess.run(
            [sys.executable, "-m", "coordinator", "user", "add", name, "--role", role],
            input=password + "\n",
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=60,
        )

    def metrics(self) -> Samples:
        return parse_metrics(httpx.get(f"{self.url}/metrics", timeout=5, verify=self.verify).text)

    def ws_url(self, room_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/rooms/{room_id}/control"


class Agent:
    """A room agent process; ``coordinator`` is a running one or just a URL (e.g. a closed port)."""

    def __init__(
        self,
        coordinator: Coordinator | str,
        room_id: str,
        token: str,
        folder: Path,
        extra: str = "",
        local_api_port: int = 0,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """``prefix`` goes in front of the agent's command (e.g. to run it behind a network link)."""
        self.room_id = room_id
        self.env = {**os.environ, **(env or {})}
        self.prefix = list(prefix)
        self.local_api = f"http://127.0.0.1:{local_api_port}" if local_api_port else None
        folder.mkdir(parents=True, exist_ok=True)
        self.token_file = folder / "room.token"
        self.token_file.write_text(token + "\n")
        self.config = folder / "agent.toml"
        url = coordinator if isinstance(coordinator, str) else coordinator.url
        self.config.write_text(
            f'room = "{room_id}"\n'
            f'coordinator_url = "{url}"\n'
            f"allow_plain_http = {'true' if url.startswith('http:') else 'false'}\n"
            f'token_file = "{self.token_file}"\n'
            "heartbeat_interval = 0.5\n"
            "reconnect_initial_delay = 0.3\n"
            "reconnect_max_delay = 1.0\n"
            f"local_api_port = {local_api_port}\n" + extra
        )
        self.log = folder / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Agent:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "node_agent", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=self.env,
            )
        return self

    @property
    def secret_file(self) -> Path:
        """Where the agent writes its local API secret (the config's default: next to the token)."""
        return self.token_file.parent / "local-api.secret"

    def local(self, authorized: bool = True) -> httpx.Client:
        """A client of the agent's local API once it answers, with its secret like the local tools."""
        assert self.local_api is not None, "start the agent with a local_api_port"
        headers = {}
        if authorized:
            secret = wait_for(self._secret, 60, f"{self.room_id}'s local API secret in {self.secret_file}")
            headers["Authorization"] = f"Bearer {secret}"
        healthz = f"{self.local_api}/healthz"
        wait_for(lambda: self._alive() and httpx.get(healthz, timeout=5).status_code == 200, 60, "the local API")
        return httpx.Client(base_url=self.local_api, headers=headers, timeout=5)

    def _alive(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, f"agent exited:\n{self.log.read_text()[-3000:]}"
        return True

    def _secret(self) -> str:
        self._alive()
        return self.secret_file.read_text().strip() if self.secret_file.exists() else ""

    def status(self) -> dict[str, Any]:
        """The agent's own GET /status on its local API."""
        with self.local() as local:
            response = local.get("/status")
        response.raise_for_status()
        return dict(response.json())

    def decoded(self, rooms: Iterable[str]) -> tuple[str | None, list[str | None]]:
        """Which rooms' test picture and tones this simulated room decodes now (``[media] decode = true``):
        (program, [chair's sound, floor's sound]), each a room id or None."""
        decoded = self.status()["decoded"]
        return room_with_code(decoded["program"], rooms), [room_with_tone(hz, rooms) for hz in decoded["audio"]]

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        return stop_process(self.proc, sig)
