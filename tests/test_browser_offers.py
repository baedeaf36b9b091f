"""Offers as Firefox and Safari write them, answered by the router's peer: VP8 and Opus only, whatever the
order and whatever else is offered (VP9, AV1, H264 first, RTX, RED, ULPFEC, a session-level fingerprint,
``extmap-allow-mixed``). Chromium's own offers meet the router for real in tests/test_web_browser.py.
"""

from __future__ import annotations

import pytest
from aiortc.sdp import SessionDescription

from coordinator.media.peer import SLOT_LAYOUT, OfferError, RoomPeer, check_offer

FINGERPRINT = ":".join(f"{n:02X}" for n in range(32))
CANDIDATE = "a=candidate:0 1 UDP 2122252543 192.0.2.10 50000 typ host"


def _firefox_video() -> str:
    return f"""m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98 105 106 103 104
c=IN IP4 0.0.0.0
a=sendrecv
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:5 urn:ietf:params:rtp-hdrext:toffset
a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/transport-wide-cc-extensions-01
a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1
a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1
a=fmtp:120 max-fs=12288;max-fr=60
a=fmtp:124 apt=120
a=fmtp:121 max-fs=12288;max-fr=60
a=fmtp:125 apt=121
a=fmtp:127 apt=126
a=fmtp:98 apt=97
a=fmtp:106 apt=105
a=fmtp:104 apt=103
a=ice-pwd:0123456789abcdef0123456789abcdef
a=ice-ufrag:fx01
a=mid:0
a=msid:{{a0b1c2d3-0000-4000-8000-000000000001}} {{a0b1c2d3-0000-4000-8000-000000000002}}
a=rtcp-fb:120 nack
a=rtcp-fb:120 nack pli
a=rtcp-fb:120 ccm fir
a=rtcp-fb:120 goog-remb
a=rtcp-fb:120 transport-cc
a=rtcp-fb:121 nack
a=rtcp-fb:121 nack pli
a=rtcp-fb:126 nack
a=rtcp-fb:126 nack pli
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:120 VP8/90000
a=rtpmap:124 rtx/90000
a=rtpmap:121 VP9/90000
a=rtpmap:125 rtx/90000
a=rtpmap:126 H264/90000
a=rtpmap:127 rtx/90000
a=rtpmap:97 H264/90000
a=rtpmap:98 rtx/90000
a=rtpmap:105 H264/90000
a=rtpmap:106 rtx/90000
a=rtpmap:103 H264/90000
a=rtpmap:104 rtx/90000
a=setup:actpass
a=ssrc:1111111111 cname:{{a0b1c2d3-0000-4000-8000-000000000003}}
{CANDIDATE}
"""


def _firefox_audio(mid: int, direction: str) -> str:
    return f"""m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101
c=IN IP4 0.0.0.0
a={direction}
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level
a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid
a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
a=fmtp:101 0-15
a=ice-pwd:0123456789abcdef0123456789abcdef
a=ice-ufrag:fx01
a=mid:{mid}
a=rtcp-mux
a=rtpmap:109 opus/48000/2
a=rtpmap:9 G722/8000/1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=setup:actpass
{CANDIDATE}
"""


# Firefox: the DTLS fingerprint once for the session, every codec it has, rtx for each video codec.
FIREFOX = (
    "v=0\r\no=mozilla...THIS_IS_SDPARTA-120.0 4294967296 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    f"a=fingerprint:sha-256 {FINGERPRINT}\r\na=group:BUNDLE 0 1 2\r\na=ice-options:trickle\r\n"
    "a=msid-semantic:WMS *\r\n"
    + (_firefox_video() + _firefox_audio(1, "sendrecv") + _firefox_audio(2, "recvonly")).replace("\n", "\r\n")
)


def _safari_section(kind: str, mid: int, direction: str) -> str:
    if kind == "video":
        codecs = (
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 127 125 104\r\n"
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;"
            "profile-level-id=640c1f\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
            "a=rtpmap:98 H264/90000\r\na=fmtp:98 level-asymmetry-allowed=1;packetization-mode=1;"
            "profile-level-id=42e01f\r\na=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n"
            "a=rtpmap:100 VP8/90000\r\na=rtpmap:101 rtx/90000\r\na=fmtp:101 apt=100\r\n"
            "a=rtpmap:127 red/90000\r\na=rtpmap:125 rtx/90000\r\na=fmtp:125 apt=127\r\n"
            "a=rtpmap:104 ulpfec/90000\r\n"
            "a=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n"
            "a=rtcp-fb:100 nack\r\na=rtcp-fb:100 nack pli\r\na=rtcp-fb:100 ccm fir\r\n"
        )
    else:
        codecs = (
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
            "a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
            "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\n"
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\n"
            "a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n"
        )
    return (
        codecs + "c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:sf01\r\n"
        "a=ice-pwd:abcdefabcdefabcdefabcdef\r\na=ice-options:trickle\r\n"
        f"a=fingerprint:sha-256 {FINGERPRINT}\r\na=setup:actpass\r\na=mid:{mid}\r\n"
        "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n"
        f"a={direction}\r\na=rtcp-mux\r\na=rtcp-rsize\r\n{CANDIDATE}\r\n"
    )


# Safari: H264 before VP8, RED and ULPFEC, extmap-allow-mixed, everything per media section.
SAFARI = (
    "v=0\r\no=- 1234567890123456789 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n"
    "a=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n"
    + _safari_section("video", 0, "sendrecv")
    + _safari_section("audio", 1, "sendrecv")
    + _safari_section("audio", 2, "recvonly")
)


@pytest.mark.parametrize("offer", [FIREFOX, SAFARI], ids=["firefox", "safari"])
async def test_a_browsers_offer_is_answered_with_vp8_and_opus_only(offer: str) -> None:
    check_offer(offer, SLOT_LAYOUT)
    peer = RoomPeer("khach:1", 1, _ignore_packet, lambda room, slot: None, lambda peer: None)
    try:
        answer = SessionDescription.parse(await peer.answer(offer))
    finally:
        await peer.close()
    video, chair, floor = answer.media
    (vp8,) = [codec for codec in video.rtp.codecs if codec.name != "rtx"]  # no red, ulpfec, H264, VP9
    assert vp8.name == "VP8"
    assert all(c.parameters.get("apt") == vp8.payloadType for c in video.rtp.codecs if c.name == "rtx")
    assert {codec.name for codec in chair.rtp.codecs} == {"opus"}
    assert {codec.name for codec in floor.rtp.codecs} == {"opus"}
    assert (video.direction, chair.direction, floor.direction) == ("sendrecv", "sendrecv", "sendonly")


def _ignore_packet(*_: object) -> None:
    return None


def test_an_offer_without_vp8_says_what_the_router_forwards() -> None:
    h264_only = SAFARI.replace("a=rtpmap:100 VP8/90000\r\n", "a=rtpmap:100 H263/90000\r\n")
    with pytest.raises(OfferError, match="the router forwards VP8 only"):
        check_offer(h264_only, SLOT_LAYOUT)
