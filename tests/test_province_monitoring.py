"""A commune's Prometheus: its series named by commune and written to its coordinator, which carries them
to the province's Prometheus when the commune is in a province (tests/test_series_relay.py)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.monitoring_config import ROOT, render

PROVINCE_MONITORING = ROOT / "inventory" / "thanh_hoa" / "group_vars" / "province" / "monitoring.yml"


def test_a_commune_writes_its_series_to_its_coordinator(tmp_path: Path) -> None:
    config = render(tmp_path / "etc", {"monitoring_commune": "xa-a"})
    prometheus = yaml.safe_load((config / "prometheus.yml").read_text())
    assert prometheus["global"]["external_labels"] == {"commune": "xa-a"}
    [target] = prometheus["remote_write"]
    assert target["url"] == "http://127.0.0.1:8080/local/province-series"
    # Only scraped series go: what the rules make, the province makes itself from them.
    [drop] = target["write_relabel_configs"]
    assert (drop["source_labels"], drop["action"]) == (["__name__"], "drop")
    sent = [
        name
        for name in ("phonghop_room_up", "up", "ALERTS", "ALERTS_FOR_STATE", "room:phonghop_room_available:bool")
        if not re.fullmatch(drop["regex"], name)  # Prometheus anchors its regexes
    ]
    assert sent == ["phonghop_room_up", "up"]


def test_the_province_writes_nowhere(tmp_path: Path) -> None:
    """The province's Prometheus, as its inventory configures it: the top of the tree."""
    province_vars = yaml.safe_load(PROVINCE_MONITORING.read_text())
    prometheus = yaml.safe_load((render(tmp_path / "etc", province_vars) / "prometheus.yml").read_text())
    assert "remote_write" not in prometheus
    assert prometheus["global"]["external_labels"] == {"commune": "thanh-hoa"}
