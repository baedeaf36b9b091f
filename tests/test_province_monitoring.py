"""A commune's Prometheus in a province: its series named by commune and written to the province's Prometheus."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.monitoring_config import render


def test_a_commune_writes_its_series_to_the_province(tmp_path: Path) -> None:
    config = render(
        tmp_path / "etc",
        {"monitoring_remote_write_url": "http://tinh.example:9090/api/v1/write", "monitoring_commune": "xa-a"},
    )
    prometheus = yaml.safe_load((config / "prometheus.yml").read_text())
    assert prometheus["global"]["external_labels"] == {"commune": "xa-a"}
    [target] = prometheus["remote_write"]
    assert target["url"] == "http://tinh.example:9090/api/v1/write"
    # Only scraped series go: what the rules make, the province makes itself from them.
    [drop] = target["write_relabel_configs"]
    assert (drop["source_labels"], drop["action"]) == (["__name__"], "drop")
    sent = [
        name
        for name in ("phonghop_room_up", "up", "ALERTS", "ALERTS_FOR_STATE", "room:phonghop_room_available:bool")
        if not re.fullmatch(drop["regex"], name)  # Prometheus anchors its regexes
    ]
    assert sent == ["phonghop_room_up", "up"]


def test_a_commune_alone_writes_nowhere(tmp_path: Path) -> None:
    prometheus = yaml.safe_load((render(tmp_path / "etc") / "prometheus.yml").read_text())
    assert "remote_write" not in prometheus
    assert prometheus["global"]["external_labels"] == {"commune": "phong-son"}
