"""The alert and recording rules and the Alertmanager routing, as the monitoring role renders them.

promtool runs the rule unit tests in tests/monitoring/*.test.yml against the rendered rules file
(province.test.yml against the province's, rendered with the communes' remote-write receiver); amtool
checks the rendered Alertmanager configuration and where each alert is routed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring_config import ROOT, TEST_BOT_TOKEN, TESTS_DIR, render

# The sections alert texts may link to: the runbook's own anchors.
RUNBOOK = (ROOT / "docs" / "RUNBOOK.md").read_text(encoding="utf-8")
RUNBOOK_ANCHORS = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', RUNBOOK))
VIETNAMESE = re.compile(r"[àáảãạăắằẳẵặâấầẩẫậđèéẻẽẹêếềểễệìíỉĩịòóỏõọôốồổỗộơớờởỡợùúủũụưứừửữựỳýỷỹỵ]", re.I)
WEBHOOK = "http://127.0.0.1:9/ky-thuat"
PROVINCE = "tinh"
PROVINCE_TESTS = TESTS_DIR / "province.test.yml"


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("monitoring"), {"monitoring_webhook_urls": [WEBHOOK]})


@pytest.fixture(scope="module")
def province_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The province's configuration: it receives the communes' series and watches their uplinks."""
    return render(
        tmp_path_factory.mktemp("province"),
        {
            "monitoring_webhook_urls": [WEBHOOK],
            "monitoring_remote_write_receiver": True,
            "monitoring_commune": PROVINCE,
        },
    )


def commune_tests() -> list[Path]:
    return sorted(set(TESTS_DIR.glob("*.test.yml")) - {PROVINCE_TESTS})


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules(config_dir: Path) -> list[dict[str, Any]]:
    data = load(config_dir / "rules" / "phonghop.rules.yml")
    return [rule for group in data["groups"] for rule in group["rules"]]


def alerts(config_dir: Path) -> list[dict[str, Any]]:
    return [rule for rule in rules(config_dir) if "alert" in rule]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rendered_rules_and_config(config_dir: Path, province_dir: Path) -> None:
    for rendered in (config_dir, province_dir):
        result = run("promtool", "check", "rules", str(rendered / "rules" / "phonghop.rules.yml"))
        assert result.returncode == 0, result.stdout + result.stderr
        result = run("promtool", "check", "config", str(rendered / "prometheus.yml"))
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("level", ["commune", "province"])
def test_rule_unit_tests_pass(level: str, request: pytest.FixtureRequest) -> None:
    """The test files run against the rendered rules of their level (rule_files is relative)."""
    rendered: Path = request.getfixturevalue("config_dir" if level == "commune" else "province_dir")
    test_files = commune_tests() if level == "commune" else [PROVINCE_TESTS]
    assert test_files
    for test_file in test_files:
        shutil.copy(test_file, rendered / "rules" / test_file.name)
    result = run("promtool", "test", "rules", *(str(rendered / "rules" / f.name) for f in test_files))
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_province_watches_communes(config_dir: Path, province_dir: Path) -> None:
    assert "PhongHopCommuneUnreachable" not in {rule["alert"] for rule in alerts(config_dir)}
    assert {rule["alert"] for rule in alerts(province_dir)} - {rule["alert"] for rule in alerts(config_dir)} == {
        "PhongHopCommuneUnreachable"
    }


def test_every_rule_has_a_firing_and_a_quiet_test(province_dir: Path) -> None:
    """Over the province's rules: the commune's and the province's own."""
    firing: set[str] = set()
    quiet: set[str] = set()
    exprs: list[str] = []
    for test_file in TESTS_DIR.glob("*.test.yml"):
        for test in load(test_file)["tests"]:
            for check in test.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
            exprs += [check["expr"] for check in test.get("promql_expr_test", [])]
    names = {rule["alert"] for rule in alerts(province_dir)}
    assert names - firing == set(), "alerts without a test where they fire"
    assert names - {"Watchdog"} - quiet == set(), "alerts without a test where they stay quiet"
    records = {rule["record"] for rule in rules(province_dir) if "record" in rule}
    untested = {name for name in records if not any(name in expr for expr in exprs)}
    # The 1d average differs from the tested 1h average only in its window.
    assert untested <= {"room:phonghop_room_available:avg_1d"}


def test_every_alert_says_what_and_where_in_vietnamese(province_dir: Path) -> None:
    for rule in alerts(province_dir):
        name, labels, notes = rule["alert"], rule.get("labels", {}), rule.get("annotations", {})
        assert labels.get("severity") in {"critical", "warning", "none"}, name
        assert VIETNAMESE.search(notes.get("summary", "")), f"{name}: summary not in Vietnamese"
        assert VIETNAMESE.search(notes.get("description", "")), f"{name}: description not in Vietnamese"
        url, _, anchor = notes["runbook_url"].partition("#")
        assert url == "docs/RUNBOOK.md", f"{name}: runbook_url {url}"
        assert anchor in RUNBOOK_ANCHORS, f"{name}: runbook anchor {anchor!r} is not one of the runbook's sections"
        if labels.get("scope") == "room":
            assert "$labels.room" in notes["summary"], f"{name}: the summary must name the room"


def test_amtool_accepts_the_rendered_alertmanager_config(config_dir: Path) -> None:
    result = run("amtool", "check-config", str(config_dir / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    config = load(config_dir / "alertmanager.yml")
    receivers = {r["name"]: r for r in config["receivers"]}
    # Secrets and channels come from the inventory (here: the test's stand-in token and webhook).
    assert receivers["ky-thuat-vien-khan"]["telegram_configs"][0]["bot_token"] == TEST_BOT_TOKEN
    assert receivers["ky-thuat-vien-khan"]["telegram_configs"][0]["chat_id"] == -1001234567890
    assert receivers["ky-thuat-vien-khan"]["telegram_configs"][0]["disable_notifications"] is False
    assert receivers["ky-thuat-vien"]["telegram_configs"][0]["disable_notifications"] is True
    assert receivers["ky-thuat-vien"]["webhook_configs"][0]["url"] == WEBHOOK
    assert (config_dir / "alertmanager.yml").stat().st_mode & 0o007 == 0, "alertmanager.yml holds secrets"


# Where each alert goes: (labels beyond alertname and severity, receiver).
ROUTES: dict[str, tuple[dict[str, str], str]] = {
    "Watchdog": ({}, "watchdog"),
    "PhongHopRoomOffline": ({"scope": "room", "room": "tdp-01"}, "ky-thuat-vien"),
    "PhongHopRoomMetricsMissing": ({"scope": "room", "room": "tdp-01"}, "ky-thuat-vien"),
    "PhongHopRoomMissingFromMeeting": ({"scope": "room", "room": "tdp-01", "meeting": "3"}, "ky-thuat-vien-khan"),
    "PhongHopRoomNotReady": ({"scope": "room", "room": "tdp-01", "meeting": "3"}, "ky-thuat-vien-khan"),
    "PhongHopRoomDeviceMissing": ({"scope": "room", "room": "tdp-01", "device": "camera"}, "ky-thuat-vien"),
    "PhongHopAgentVersionDrift": ({"scope": "room", "room": "tdp-01"}, "ky-thuat-vien"),
    "PhongHopRoomPacketLoss": ({"scope": "room", "room": "tdp-01", "meeting": "3"}, "ky-thuat-vien"),
    "PhongHopRoomHighLatency": ({"scope": "room", "room": "tdp-01", "meeting": "3"}, "ky-thuat-vien"),
    "PhongHopRoomHighJitter": ({"scope": "room", "room": "tdp-01", "meeting": "3"}, "ky-thuat-vien"),
    "PhongHopCoordinatorDown": ({}, "ky-thuat-vien-khan"),
    "PhongHopManyRoomsOffline": ({}, "ky-thuat-vien-khan"),
    "PhongHopPrometheusConfigReloadFailed": ({}, "ky-thuat-vien"),
    "PhongHopPrometheusRuleFailures": ({}, "ky-thuat-vien"),
    "PhongHopPrometheusNotificationsFailing": ({}, "ky-thuat-vien-khan"),
    "PhongHopAlertmanagerConfigReloadFailed": ({}, "ky-thuat-vien"),
    "PhongHopAlertmanagerNotificationsFailing": ({"integration": "telegram"}, "ky-thuat-vien-khan"),
    "PhongHopMonitoringTargetDown": ({}, "ky-thuat-vien"),
    "PhongHopDiskNearlyFull": ({}, "ky-thuat-vien"),
    "PhongHopRecordingStopped": ({"meeting": "3"}, "ky-thuat-vien"),
    "PhongHopBackupTooOld": ({}, "ky-thuat-vien"),
    "PhongHopBackupCheckFailed": ({}, "ky-thuat-vien"),
}


def routes_to(config: Path, receiver: str, labels: dict[str, str]) -> None:
    result = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={config / 'alertmanager.yml'}",
        f"--verify.receivers={receiver}",
        *(f"{key}={value}" for key, value in labels.items()),
    )
    assert result.returncode == 0, f"{labels}: {result.stdout}{result.stderr}"


def test_each_alert_routes_to_its_receiver(config_dir: Path) -> None:
    by_name = {rule["alert"]: rule for rule in alerts(config_dir)}
    assert set(ROUTES) == set(by_name), "every alert needs an expected route here"
    for name, (extra, receiver) in ROUTES.items():
        labels = {"alertname": name, "commune": "phong-son", "severity": by_name[name]["labels"]["severity"], **extra}
        routes_to(config_dir, receiver, labels)


def test_the_province_hears_of_a_commune_once_and_of_its_own_rooms(province_dir: Path) -> None:
    """An unreachable commune pages the province; what the communes' series say goes to nobody here
    (each commune's own Alertmanager sends it); the province's own rooms route as in a commune."""
    unreachable = {"alertname": "PhongHopCommuneUnreachable", "severity": "critical", "room": "xa-a"}
    routes_to(province_dir, "ky-thuat-vien-khan", {**unreachable, "commune": PROVINCE})
    for name, (extra, _) in ROUTES.items():
        routes_to(province_dir, "cac-xa", {"alertname": name, "severity": "critical", **extra, "commune": "xa-a"})
    own_room = {"alertname": "PhongHopRoomOffline", "severity": "warning", "scope": "room", "room": "tinh-ubnd"}
    routes_to(province_dir, "ky-thuat-vien", {**own_room, "commune": PROVINCE})
    inhibit = load(province_dir / "alertmanager.yml")["inhibit_rules"]
    assert {
        "source_matchers": ['alertname = "PhongHopCommuneUnreachable"'],
        "target_matchers": ['scope = "room"'],
        "equal": ["commune", "room"],
    } in inhibit


def test_quiet_hours_hold_back_warnings_only(config_dir: Path) -> None:
    config = load(config_dir / "alertmanager.yml")
    intervals = {item["name"]: item["time_intervals"] for item in config["time_intervals"]}
    assert intervals["gio-yen-tinh"][0]["location"] == "Asia/Ho_Chi_Minh"
    for route in config["route"]["routes"]:
        matchers = " ".join(route["matchers"])
        muted = route.get("mute_time_intervals", [])
        if matchers == 'severity = "warning"':
            assert muted == ["gio-yen-tinh"]
        else:
            assert muted == [], f"route {matchers} must not wait for quiet hours"


def test_outages_inhibit_the_room_alerts_they_explain(config_dir: Path) -> None:
    rules_by_source = {
        " ".join(rule["source_matchers"]): (rule["target_matchers"], rule["equal"])
        for rule in load(config_dir / "alertmanager.yml")["inhibit_rules"]
    }
    assert rules_by_source['alertname = "PhongHopCoordinatorDown"'][1] == ["commune"]
    assert rules_by_source['alertname = "PhongHopManyRoomsOffline"'] == (['scope = "room"'], ["commune"])
    assert rules_by_source['alertname = "PhongHopRoomOffline"'][1] == ["commune", "room"]
