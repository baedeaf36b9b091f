"""The monitoring role as Ansible code: lint-clean and idempotent."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.monitoring_config import ROOT, run_role


def test_role_passes_ansible_lint_production_profile() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-lint"),
            "--offline",
            "--profile",
            "production",
            "roles/monitoring",
            "tests/monitoring/render.yml",
            "inventory/phong_son/group_vars/monitoring",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_writing_the_configuration_twice_changes_nothing(tmp_path: Path) -> None:
    first = run_role(tmp_path / "etc")
    assert re.search(r"changed=[1-9]", first), first[-2000:]
    second = run_role(tmp_path / "etc")
    assert re.search(r"changed=0\b", second), second[-2000:]


def test_no_receiver_at_all_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="monitoring_webhook_urls"):
        run_role(tmp_path / "etc", {"vault_monitoring_telegram_bot_token": ""})
