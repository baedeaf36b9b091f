"""The private parts of aiortc, aioice and pylibsrtp that the glue reaches, checked on the pinned versions.

When a pin changes, these fail by name before any media test fails by symptom.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys

import pytest
from aioice.ice import StunProtocol
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import StreamStatistics

from coordinator.media.peer import Placeholder
from phonghop.webrtc import peer_connection

SENDER = (
    "_run_rtp",
    "_run_rtcp",
    "_handle_rtcp_packet",
    "_send_keyframe",
    "_next_encoded_frame",
    "_ssrc",
    "_rtx_ssrc",
    "_enabled",
    "_RTCRtpSender__mid",
    "_RTCRtpSender__rtp_header_extensions_map",
    "_RTCRtpSender__rtx_payload_type",
    "_RTCRtpSender__rtp_started",
    "_RTCRtpSender__rtp_exited",
    "_RTCRtpSender__rtcp_started",
    "_RTCRtpSender__rtcp_exited",
    "_RTCRtpSender__force_keyframe",
)
RECEIVER = (
    "_run_rtcp",
    "_handle_rtcp_packet",
    "_handle_rtp_packet",
    "_send_rtcp_pli",
    "_enabled",
    "_RTCRtpReceiver__codecs",
    "_RTCRtpReceiver__rtx_ssrc",
    "_RTCRtpReceiver__rtcp_ssrc",
    "_RTCRtpReceiver__nack_generator",
    "_RTCRtpReceiver__remote_bitrate_estimator",
    "_RTCRtpReceiver__jitter_buffer",
    "_RTCRtpReceiver__rtcp_started",
    "_RTCRtpReceiver__rtcp_exited",
)
DTLS = ("_state", "_tx_srtp", "_rx_srtp", "_rtp_router", "_rtp_header_extensions_map", "transport")


async def test_the_private_names_the_glue_uses_exist() -> None:
    pc = peer_connection()
    try:
        video = pc.addTransceiver(Placeholder("video"), direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        sender, receiver = video.sender, video.receiver
        assert isinstance(video._codecs, list)  # the answer's codecs, whose Opus parameters the router sets
        assert isinstance(sender, RTCRtpSender)
        assert isinstance(receiver, RTCRtpReceiver)
        assert [name for name in SENDER if not hasattr(sender, name)] == []
        assert [name for name in RECEIVER if not hasattr(receiver, name)] == []
        assert isinstance(receiver._RTCRtpReceiver__codecs, dict)  # type: ignore[attr-defined]
        assert isinstance(receiver._RTCRtpReceiver__rtx_ssrc, dict)  # type: ignore[attr-defined]
        dtls = sender.transport
        assert isinstance(dtls, RTCDtlsTransport)
        assert [name for name in DTLS if not hasattr(dtls, name)] == []
        assert dtls._state is DtlsState.NEW
        connection = dtls.transport._connection
        assert isinstance(connection._nominated, dict)
        assert connection._protocols  # gathered with the local description
        assert all(isinstance(p, StunProtocol) and hasattr(p, "transport") for p in connection._protocols)
        assert hasattr(pc, "_RTCPeerConnection__cname")
        stats = StreamStatistics(90000)
        assert {"add", "fraction_lost", "packets_lost", "jitter", "max_seq", "_clockrate"} <= set(dir(stats))
    finally:
        await pc.close()


def test_another_aiortc_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.9.9" if name == "aiortc" else real(name))
    saved = sys.modules.pop("phonghop.aiortc_glue")
    try:
        with pytest.raises(ImportError, match=re.escape("written for aiortc 1.16.0, found 9.9.9")):
            importlib.import_module("phonghop.aiortc_glue")
    finally:
        sys.modules["phonghop.aiortc_glue"] = saved
