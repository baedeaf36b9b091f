"""The monitoring role's configuration, rendered by real Ansible from the real inventory.

Tests never keep copies of prometheus.yml, alertmanager.yml or the rules: they
run the role (config tasks only, ``monitoring_manage_services: false``) against
this machine and test what it wrote, so a change to a template is what gets tested.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventory" / "phong_son"
PLAYBOOK = ROOT / "tests" / "monitoring" / "render.yml"
TESTS_DIR = ROOT / "tests" / "monitoring"
# A stand-in for the vaulted bot token, so that the Telegram receivers are rendered too.
TEST_BOT_TOKEN = "123456:test-token-not-real"


def render(config_dir: Path, extra_vars: dict[str, Any] | None = None) -> Path:
    """Run the role's config tasks into ``config_dir`` (validated by promtool/amtool as the role does)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    variables: dict[str, Any] = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "monitoring_manage_services": False,
        "monitoring_config_dir": str(config_dir),
        "monitoring_config_owner": pwd.getpwuid(os.getuid()).pw_name,
        "monitoring_config_group": grp.getgrgid(os.getgid()).gr_name,
        "vault_monitoring_telegram_bot_token": TEST_BOT_TOKEN,
        **(extra_vars or {}),
    }
    vars_file = config_dir / "render-vars.json"
    vars_file.write_text(json.dumps(variables))
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_HOME": str(config_dir / ".ansible"),
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(INVENTORY),
            str(PLAYBOOK),
            "-e",
            f"@{vars_file}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, f"rendering the monitoring role failed:\n{result.stdout[-4000:]}\n{result.stderr}"
    vars_file.unlink()
    return config_dir
