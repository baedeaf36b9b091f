"""How the agent reaches the coordinator: one TLS set-up and the coordinator's reasons for a refusal.

The control channel, the self-test and the TV's uploads all use these, so a
room that trusts the coordinator for one trusts it for all, and a refusal is
told in the coordinator's own words wherever it happens.
"""

from __future__ import annotations

import json
import ssl
from typing import Any

from node_agent.config import AgentConfig
from phonghop import __version__


def tls(config: AgentConfig) -> ssl.SSLContext:
    """The coordinator's certificate is checked against ``ca_file`` when set, the system's CAs otherwise."""
    return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)


def control_options(config: AgentConfig, token: str) -> dict[str, Any]:
    """``websockets.connect`` options for the control channel (the agent's and the self-test's probe)."""
    return {
        "additional_headers": {"Authorization": f"Bearer {token}"},
        "ssl": tls(config) if config.control_url.startswith("wss:") else None,
        "open_timeout": 10,
        "user_agent_header": f"phonghop-agent/{__version__}",
    }


def refusal_reason(status_code: int, body: bytes | bytearray | None) -> str:
    """The coordinator's own words for a refused request (its JSON error body), or the HTTP status."""
    try:
        return str(json.loads(body or b"")["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status_code}"
