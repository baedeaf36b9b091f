"""A real monitoring stack for the tests and the alerting bench.

Prometheus and Alertmanager are the Debian packages' binaries, started with their
own data folders on free ports (never the system services' 9090/9093, and no
cluster gossip port), configured by the monitoring role from the inventory. A
small HTTP server stands in for the technician's channel (Alertmanager's webhook).
``live_commune`` puts them together with a coordinator and real agents.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from phonghop.identity import load_rooms
from tests.harness import Agent, Coordinator, free_port, sample, stop_process, wait_for
from tests.monitoring_config import ROOT, render

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
MONITORING_DEFAULTS = ROOT / "roles" / "monitoring" / "defaults" / "main.yml"  # every duration the rules take


@dataclass(frozen=True)
class Notification:
    """One alert as the technician's channel received it, and when (time.monotonic())."""

    received: float
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]


class WebhookReceiver:
    """Collects Alertmanager webhook notifications, one entry per alert in each message."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.monotonic()
                with receiver._lock:
                    for alert in body["alerts"]:
                        receiver.notifications.append(
                            Notification(now, alert["status"], alert["labels"], alert["annotations"])
                        )
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/ky-thuat-vien"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def matching(self, status: str, since: float = 0.0, **labels: str) -> list[Notification]:
        with self._lock:
            return [
                n
                for n in self.notifications
                if n.status == status and n.received >= since and all(n.labels.get(k) == v for k, v in labels.items())
            ]

    def wait(self, status: str, timeout: float, since: float = 0.0, **labels: str) -> Notification:
        found = wait_for(
            lambda: self.matching(status, since, **labels),
            timeout,
            f"a {status} notification with {labels}",
            interval=0.05,
        )
        first: Notification = found[0]
        return first


@dataclass(frozen=True)
class Timing:
    """Intervals of the stack as role variables: short for the tests; ``Timing.production()`` keeps the role's."""

    scrape: str | None = "1s"
    evaluation: str | None = "1s"
    rule_for: str | None = "3s"
    coordinator_down_for: str = "2s"
    group_wait: str | None = "1s"
    group_interval: str | None = "1s"

    @classmethod
    def production(cls) -> Timing:
        return cls(None, None, None, "", None, None)

    def role_vars(self) -> dict[str, Any]:
        variables: dict[str, Any] = {}
        if self.rule_for is not None:
            keys = yaml.safe_load(MONITORING_DEFAULTS.read_text(encoding="utf-8"))["monitoring_rule_for"]
            variables["monitoring_rule_for"] = {key: self.rule_for for key in keys}
            variables["monitoring_rule_for"]["coordinator_down"] = self.coordinator_down_for
        for name, value in (
            ("monitoring_scrape_interval", self.scrape),
            ("monitoring_evaluation_interval", self.evaluation),
            ("monitoring_alertmanager_group_wait", self.group_wait),
            ("monitoring_alertmanager_group_interval", self.group_interval),
        ):
            if value is not None:
                variables[name] = value
        return variables


class MonitoringStack:
    """Prometheus + Alertmanager configured by the role to scrape one coordinator.

    Without a webhook there is no Alertmanager, only Prometheus (a test that reads the province's
    Prometheus). ``role_vars`` are further inventory values (the commune's name, remote write); with
    ``monitoring_remote_write_receiver`` Prometheus takes the communes' writes (through the province's
    coordinator), as at the province.
    """

    def __init__(
        self,
        folder: Path,
        coordinator_port: int,
        webhook_url: str | None,
        timing: Timing,
        role_vars: dict[str, Any] | None = None,
        prometheus_port: int | None = None,
        prefix: Sequence[str] = (),
        listen_address: str = "127.0.0.1",
    ) -> None:
        """``prefix`` goes in front of each command (to run behind a network link); Prometheus listens on
        ``listen_address`` (a province's: where its communes write)."""
        self.folder = folder
        self.prefix = list(prefix)
        self.listen_address = listen_address
        self.prometheus_port = prometheus_port or free_port()
        self.alertmanager_port = free_port()
        self.with_alertmanager = webhook_url is not None
        self.receiver = bool((role_vars or {}).get("monitoring_remote_write_receiver"))
        self.prometheus_url = f"http://127.0.0.1:{self.prometheus_port}"
        self.alertmanager_url = f"http://127.0.0.1:{self.alertmanager_port}"
        self.config_dir = render(
            folder / "etc",
            {
                # The inventory's coordinator host, reached on this machine.
                "ansible_host": "127.0.0.1",
                "monitoring_coordinator_port": coordinator_port,
                # The test's coordinator serves plain HTTP itself; deployments put nginx with TLS in front.
                "monitoring_coordinator_scheme": "http",
                "monitoring_coordinator_ca_file": "",
                "monitoring_listen_address": "127.0.0.1",
                "monitoring_prometheus_port": self.prometheus_port,
                "monitoring_alertmanager_port": self.alertmanager_port,
                "monitoring_node_exporter_groups": [],
                # The coordinator beside it carries the series to a province, if it is in one.
                "monitoring_remote_write_url": f"http://127.0.0.1:{coordinator_port}/local/province-series",
                # The role insists on a channel; without Alertmanager nothing is ever sent to this one.
                "monitoring_webhook_urls": [webhook_url or "http://127.0.0.1:9/khong-gui"],
                # No Telegram: nothing may leave this machine (and its failures would raise alerts).
                "vault_monitoring_telegram_bot_token": "",
                "monitoring_quiet_hours": [],
                **timing.role_vars(),
                **(role_vars or {}),
            },
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> MonitoringStack:
        if self.with_alertmanager:
            self._spawn(
                "alertmanager",
                [
                    ALERTMANAGER,
                    f"--config.file={self.config_dir / 'alertmanager.yml'}",
                    f"--storage.path={self.folder / 'alertmanager-data'}",
                    f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
                    "--cluster.listen-address=",
                ],
                self.alertmanager_url,
            )
        self._spawn(
            "prometheus",
            [
                PROMETHEUS,
                f"--config.file={self.config_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.folder / 'prometheus-data'}",
                f"--web.listen-address={self.listen_address}:{self.prometheus_port}",
                *(["--web.enable-remote-write-receiver"] if self.receiver else []),
            ],
            self.prometheus_url,
        )
        return self

    def _spawn(self, name: str, command: list[str], url: str) -> None:
        log = (self.folder / f"{name}.log").open("ab")
        proc = subprocess.Popen([*self.prefix, *command], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        self.procs.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited:\n{(self.folder / f'{name}.log').read_text()[-3000:]}")
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200

        wait_for(ready, 60, f"{name} on {url} to be ready")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc, signal.SIGTERM)

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Prometheus holds now (pending or firing)."""
        response = httpx.get(f"{self.prometheus_url}/api/v1/alerts", timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["alerts"]
        return result


@dataclass
class LiveCommune:
    """A coordinator, the agents of some inventory rooms, and the monitoring stack watching them."""

    coordinator: Coordinator
    agents: dict[str, Agent]
    receiver: WebhookReceiver
    stack: MonitoringStack
    times: dict[str, float] = field(default_factory=dict)


@contextmanager
def live_commune(folder: Path, timing: Timing, room_ids: Sequence[str]) -> Iterator[LiveCommune]:
    """Start the coordinator, enroll and start the rooms' agents, wait until every room is up, then
    start Prometheus and Alertmanager (so no alert fires for rooms still connecting); stop it all on
    the way out, whatever failed."""
    coordinator = Coordinator(folder / "coordinator").start()
    receiver = WebhookReceiver().start()
    agents: dict[str, Agent] = {}
    stack: MonitoringStack | None = None
    try:
        rooms = [r for r in load_rooms() if r.id in room_ids]
        for room in rooms:
            token = coordinator.enroll(room.id, room.group, room.name)
            agents[room.id] = Agent(coordinator, room.id, token, folder / "rooms" / room.id).start()
        wait_for(
            lambda: all(
                sample(coordinator.metrics(), "phonghop_room_up", room=r.id, group=r.group) == 1 for r in rooms
            ),
            120,
            "every room's agent to connect",
        )
        stack = MonitoringStack(folder / "monitoring", coordinator.port, receiver.url, timing).start()
        yield LiveCommune(coordinator, agents, receiver, stack)
    finally:
        for agent in agents.values():
            agent.stop()
        coordinator.stop()
        if stack is not None:
            stack.stop()
        receiver.stop()
