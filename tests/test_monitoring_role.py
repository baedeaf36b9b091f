"""The monitoring role as Ansible code: idempotent (tests/test_provisioning.py lints it with the rest)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.monitoring_config import run_role


def test_writing_the_configuration_twice_changes_nothing(tmp_path: Path) -> None:
    first = run_role(tmp_path / "etc")
    assert re.search(r"changed=[1-9]", first), first[-2000:]
    second = run_role(tmp_path / "etc")
    assert re.search(r"changed=0\b", second), second[-2000:]


def test_no_receiver_at_all_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="monitoring_webhook_urls"):
        run_role(tmp_path / "etc", {"vault_monitoring_telegram_bot_token": ""})
