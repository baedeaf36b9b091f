"""Peer connections with explicit ICE servers.

aiortc falls back to a public STUN server when none is given; a commune's
rooms talk to their own coordinator, so the ICE servers are always ours
(none at all on a LAN or in the lab, the commune's STUN/TURN in deployments).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection


def peer_connection(ice_servers: Sequence[str] = ()) -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(url) for url in ice_servers]))
