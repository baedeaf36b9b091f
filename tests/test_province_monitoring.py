"""A commune's Prometheus in a province: its series named by commune and written to the province's Prometheus."""

from __future__ import annotations

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
    assert prometheus["remote_write"] == [{"url": "http://tinh.example:9090/api/v1/write"}]


def test_a_commune_alone_writes_nowhere(tmp_path: Path) -> None:
    prometheus = yaml.safe_load((render(tmp_path / "etc") / "prometheus.yml").read_text())
    assert "remote_write" not in prometheus
    assert prometheus["global"]["external_labels"] == {"commune": "phong-son"}
