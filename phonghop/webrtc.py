"""Peer connections as both ends of the project need them.

ICE servers are explicit: aiortc falls back to a public STUN server when none
is given, and a commune's rooms talk to their own coordinator (no server at
all on a LAN or in the lab, the commune's STUN/TURN in deployments).

Bundling is max-bundle: with aiortc's default ("balanced") a third m-line of a
kind already seen is tied to a transport that bundling then discards, and its
media never flows. Every peer here has two audio m-lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver


def peer_connection(ice_servers: Sequence[str] = ()) -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(
            iceServers=[RTCIceServer(url) for url in ice_servers],
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )
    )


def prefer(transceiver: RTCRtpTransceiver, kind: str, mime: str) -> None:
    """Offer only ``mime`` (and its retransmissions): the router forwards VP8 and Opus as they are."""
    codecs = [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType in (mime, f"{kind}/rtx")]
    transceiver.setCodecPreferences(codecs)
