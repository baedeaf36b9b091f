"""How the agent reaches the coordinator: the control channel's options, with the one TLS set-up.

The control channel, the self-test and the TV's uploads all trust the
coordinator the same way (``phonghop.dialing.tls_context``), and a refusal is
told in the coordinator's own words wherever it happens.
"""

from __future__ import annotations

import ssl
from typing import Any

from node_agent.config import AgentConfig
from phonghop import __version__
from phonghop.dialing import tls_context


def tls(config: AgentConfig) -> ssl.SSLContext:
    """The SSL context for requests to the coordinator."""
    return tls_context(config.ca_file)


def control_options(config: AgentConfig, token: str) -> dict[str, Any]:
    """``websockets.connect`` options for the self-test's probe of the control channel."""
    return {
        "additional_headers": {"Authorization": f"Bearer {token}"},
        "ssl": tls(config) if config.control_url.startswith("wss:") else None,
        "open_timeout": 10,
        "user_agent_header": f"phonghop-agent/{__version__}",
    }
