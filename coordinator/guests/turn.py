"""TURN credentials for a guest's browser: coturn's shared-secret scheme (its ``use-auth-secret``).

The username is the moment the credentials expire and who they are for; the
password is an HMAC of it with the secret coturn also holds. Nothing is stored:
coturn checks the HMAC and refuses a username whose moment has passed. Rooms
never use TURN (they sit on networks the technician set up); only guests' pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import TypedDict

# A meeting may run over its planned end: the credentials outlive it by this much.
OVERRUN = timedelta(hours=1)


class IceServer(TypedDict):
    urls: list[str]
    username: str
    credential: str


def turn_server(url: str, secret: str, who: str, until: datetime) -> IceServer:
    """What the page gives RTCPeerConnection as its one ICE server."""
    username = f"{int((until + OVERRUN).timestamp())}:{who}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return {"urls": [url], "username": username, "credential": base64.b64encode(digest).decode("ascii")}
