"""Who may use the agent's local API: callers on this machine that can read its secret file.

Listening on 127.0.0.1 is not enough on a room laptop that also runs a web
browser: any page can send a plain cross-origin POST to 127.0.0.1, and a page
on a name that re-resolves to 127.0.0.1 (DNS rebinding) can read the answers.
So the agent makes a random secret at every start, in a file only its own user
(and root) can read, and the local API wants it as ``Authorization: Bearer``
on every request; it also answers only requests addressed to a loopback Host.
A browser page can neither read the file nor name a loopback Host for its own
origin. The local tools (``phonghop-agent check``, the tests, the provisioning
checks) read the file. This module has no web framework in it, so that the
tools can use it cheaply.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import secrets
from pathlib import Path

from node_agent.config import AgentConfig

LOOPBACK_HOST = re.compile(r"^(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?$", re.IGNORECASE)


class SecretError(Exception):
    """The secret file cannot be written or read; the message says where and what to do."""


def is_loopback_host(host: str) -> bool:
    """A Host header that names this machine's loopback (with or without a port)."""
    return bool(LOOPBACK_HOST.match(host))


def bearer_matches(authorization: str, secret: str) -> bool:
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), secret.encode())


def create_secret(path: Path) -> str:
    """A new secret in ``path`` (mode 0600), written whole before it replaces the old one."""
    secret = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(secret + "\n")
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise SecretError(
            f"cannot write the local API secret {path} ({exc.strerror}); set local_api_secret_file in the "
            "config to a file in a folder the agent's user can write (under systemd: its RuntimeDirectory)"
        ) from exc
    return secret


def read_secret(config: AgentConfig) -> str:
    """The running agent's secret, for the local tools."""
    path = config.local_api_secret_path
    try:
        secret = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise SecretError(
            f"cannot read the local API secret {path} ({exc.strerror}): is the agent running, "
            "and is this the agent's user (or root)?"
        ) from exc
    if not secret:
        raise SecretError(f"the local API secret {path} is empty; restart the agent")
    return secret


def auth_headers(config: AgentConfig) -> dict[str, str]:
    """Headers for a request to the local API."""
    return {"Authorization": f"Bearer {read_secret(config)}"}
