"""Outages reach the technician: real coordinator, agents, Prometheus, Alertmanager and a webhook.

The stack runs with 1 s scrape/evaluation intervals and 3 s `for:` durations (the
role's variables), so every fault→notification time here is the pipeline's own
latency plus those; docs/BENCHMARKS.md records them, bench/alerting.py measures
them with the production intervals. The tests run in file order on one stack:
room offline, inhibition, uptime report, and last the coordinator going down.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.alerting import LiveCommune, Timing, live_commune
from tests.harness import holds, sample, wait_for

ROOMS = ("tdp-01", "tdp-02", "tram-y-te")
TIMEOUT = 90


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCommune]:
    with live_commune(tmp_path_factory.mktemp("alerting"), Timing(), ROOMS) as commune:
        wait_for(
            lambda: len(commune.stack.query("room:phonghop_room_available:bool == 1")) == len(ROOMS),
            60,
            "Prometheus to record every room as available",
        )
        yield commune
        print("\nfault → notification times (s):", {k: round(v, 2) for k, v in commune.times.items()})


def test_room_offline_reaches_the_technician_in_vietnamese_and_resolves(live: LiveCommune) -> None:
    agent = live.agents["tdp-01"]
    fault = time.monotonic()
    agent.stop(signal.SIGKILL)
    firing = live.receiver.wait("firing", TIMEOUT, fault, alertname="PhongHopRoomOffline", room="tdp-01")
    live.times["agent killed → firing"] = firing.received - fault
    assert firing.annotations["summary"] == "Phòng Tổ dân phố 1 (tdp-01) mất kết nối"
    assert "không kết nối tới máy chủ điều phối" in firing.annotations["description"]
    assert firing.annotations["runbook_url"].endswith("docs/RUNBOOK.md#phong-mat-ket-noi")
    assert firing.labels["severity"] == "warning"
    assert firing.labels["name"] == "Tổ dân phố 1"

    back = time.monotonic()
    agent.start()
    wait_for(
        lambda: sample(live.coordinator.metrics(), "phonghop_room_up", room="tdp-01", group="residential_group") == 1,
        TIMEOUT,
        "tdp-01 to reconnect",
    )
    connected = time.monotonic()
    resolved = live.receiver.wait("resolved", TIMEOUT, back, alertname="PhongHopRoomOffline", room="tdp-01")
    live.times["agent restarted → resolved"] = resolved.received - back
    live.times["room reconnected → resolved"] = resolved.received - connected
    offline_rooms = {n.labels["room"] for n in live.receiver.matching("firing", alertname="PhongHopRoomOffline")}
    assert offline_rooms == {"tdp-01"}, "only the killed room may be reported"


def test_coordinator_down_inhibits_room_alerts_in_alertmanager(live: LiveCommune) -> None:
    """Alerts posted straight to Alertmanager (own commune label): the room alert is held back."""
    commune = "xa-thu-nghiem"
    alerts = [
        {"labels": {"alertname": "PhongHopCoordinatorDown", "severity": "critical", "commune": commune}},
        {
            "labels": {
                "alertname": "PhongHopRoomOffline",
                "severity": "warning",
                "scope": "room",
                "room": "tdp-09",
                "commune": commune,
            }
        },
    ]
    since = time.monotonic()
    httpx.post(f"{live.stack.alertmanager_url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()
    live.receiver.wait("firing", TIMEOUT, since, alertname="PhongHopCoordinatorDown", commune=commune)

    def room_alert_state() -> dict[str, object] | None:
        response = httpx.get(
            f"{live.stack.alertmanager_url}/api/v2/alerts",
            params={"filter": [f'commune="{commune}"', 'alertname="PhongHopRoomOffline"']},
            timeout=5,
        )
        found = response.json()
        status: dict[str, object] = found[0]["status"] if found else {}
        return status if status.get("inhibitedBy") else None

    status = wait_for(room_alert_state, TIMEOUT, "Alertmanager to mark the room alert as inhibited")
    assert status["state"] == "suppressed"
    assert live.receiver.matching("firing", commune=commune, alertname="PhongHopRoomOffline") == []


def test_uptime_report_lists_the_outage(live: LiveCommune) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "phonghop.cli", "uptime", "--prometheus", live.stack.prometheus_url, "--step", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = result.stdout
    assert "BÁO CÁO THỜI GIAN HOẠT ĐỘNG CÁC PHÒNG HỌP" in report
    lines = {line.split()[0]: line for line in report.splitlines() if line.split() and line.split()[0] in ROOMS}
    assert "Tổ dân phố 1" in lines["tdp-01"]
    assert "100,00%" not in lines["tdp-01"], "the killed room was not available all the time"
    assert "100,00%" in lines["tdp-02"]
    outages = [line for line in report.splitlines() if line.startswith("- ")]
    assert len(outages) == 1, report
    assert outages[0].startswith("- tdp-01 (Tổ dân phố 1): ")


def test_uptime_report_says_what_is_wrong_with_a_bad_month(live: LiveCommune) -> None:
    prometheus = live.stack.prometheus_url
    result = subprocess.run(
        [sys.executable, "-m", "phonghop.cli", "uptime", "--prometheus", prometheus, "--month", "11-2026"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "NĂM-THÁNG" in result.stderr


def test_coordinator_down_alerts_once_without_a_room_storm(live: LiveCommune) -> None:
    fault = time.monotonic()
    live.coordinator.stop()
    firing = live.receiver.wait("firing", TIMEOUT, fault, alertname="PhongHopCoordinatorDown", commune="phong-son")
    live.times["coordinator stopped → firing"] = firing.received - fault
    # Watch for longer than any room alert's `for:` plus a notification round: nothing about rooms may come.
    holds(lambda: not [a for a in live.stack.alerts() if a["labels"].get("scope") == "room"], 15, "no room alert")
    names = {n.labels["alertname"] for n in live.receiver.matching("firing", fault, commune="phong-son")}
    assert names == {"PhongHopCoordinatorDown"}

    back = time.monotonic()
    live.coordinator.start()
    serving = time.monotonic()
    resolved = live.receiver.wait("resolved", TIMEOUT, back, alertname="PhongHopCoordinatorDown", commune="phong-son")
    live.times["coordinator restarted → resolved"] = resolved.received - back
    live.times["coordinator serving → resolved"] = resolved.received - serving
    wait_for(
        lambda: len(live.stack.query("phonghop_room_up == 1")) == len(ROOMS),
        60,
        "the rooms to reconnect after the coordinator's restart",
    )
    names = {n.labels["alertname"] for n in live.receiver.matching("firing", back, commune="phong-son")}
    assert names == set(), f"no alert may follow the coordinator's recovery: {names}"
