"""A forwarding unit's peer: aiortc negotiates and keeps ICE and DTLS; packets move without it.

aiortc would decode every received track and encode every sent one, and its
send path walks six coroutines and copies a packet five times. A router needs
neither: here a received datagram is unprotected, parsed and handed to the
router in the socket's callback, and each copy the router makes is written
into its sender's header, protected once and sent on the selected ICE pair in
the same call. RTCP is one compound report per peer per second (aiortc runs a
loop per sender and per receiver); NACKs are answered from the copies sent,
keyframe requests go to the router, and the link's figures (round trip, loss,
jitter) are kept from the reports as they pass, so nothing polls statistics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from struct import pack, unpack_from
from typing import Any

import pylibsrtp
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)
from aiortc.utils import uint16_add
from pylibsrtp import SRTP_MAX_TRAILER_LEN
from pylibsrtp._binding import ffi as srtp_ffi
from pylibsrtp._binding import lib as srtp_lib

from phonghop.aiortc_glue.rtcp import IDLE_INTERVAL, Reporting, compound, ntp_now, quiet_rtcp, report_blocks

log = logging.getLogger(__name__)

MAX_DATAGRAM = 1500  # pylibsrtp's own limit, trailer included
HISTORY = 128  # copies kept per sender for retransmission: about 2.5 s of a 500 kbit/s picture
RTT_SMOOTHING = 0.85

PacketHandler = Callable[[RtpPacket], None]


# What the router asks of the Opus it receives (RFC 7587): one channel, at most a voice's bitrate, with
# in-band FEC. Browsers send what the answer asks; the rooms' agents are set so themselves.
VOICE: dict[str, int | str | None] = {"stereo": 0, "useinbandfec": 1, "maxaveragebitrate": 32_000}


def ask_for_voice(pc: RTCPeerConnection) -> None:
    """Put ``VOICE`` in the answer's Opus parameters; call between the offer and ``createAnswer``."""
    for transceiver in pc.getTransceivers():
        for codec in transceiver._codecs:
            if codec.mimeType.lower() == "audio/opus":
                codec.parameters.update(VOICE)


class Wire:
    """One peer's DTLS transport, written to at once: protect, then ``sendto`` on the selected pair.

    RTP is protected by libsrtp in place in a buffer of the wire's own, which
    the socket then reads: no copy in between (pylibsrtp's wrapper copies in
    and out). A pair whose local end is a TURN allocation (never the
    coordinator's: its candidates are its own addresses) sends through
    aioice's coroutine.
    """

    __slots__ = ("_buffer", "_length", "_nominated", "_pending", "_session", "_srtp", "_view", "dtls")

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self._nominated = dtls.transport._connection._nominated
        self._pending: set[asyncio.Future[None]] = set()
        self._buffer = srtp_ffi.new("char[]", MAX_DATAGRAM)
        self._view = memoryview(srtp_ffi.buffer(self._buffer))
        self._length = srtp_ffi.new("int *")
        self._session: pylibsrtp.Session | None = None
        self._srtp: Any = None  # the transmit session's context, once the handshake made it

    @property
    def connected(self) -> bool:
        return self.dtls._state is DtlsState.CONNECTED

    def send_rtp(self, data: bytes) -> int:
        size = len(data)
        if self.dtls._state is not DtlsState.CONNECTED or size > MAX_DATAGRAM - SRTP_MAX_TRAILER_LEN:
            return 0
        srtp = self._srtp
        if srtp is None:
            self._session = self.dtls._tx_srtp  # held: the context below lives as long as its session
            srtp = self._srtp = self._session._srtp[0]
        self._view[:size] = data
        self._length[0] = size
        if srtp_lib.srtp_protect(srtp, self._buffer, self._length):
            return 0
        return self._send(self._view[: self._length[0]])

    def send_rtcp(self, data: bytes) -> int:
        if self.dtls._state is not DtlsState.CONNECTED:
            return 0
        return self._send(self.dtls._tx_srtp.protect_rtcp(data))

    def _send(self, data: bytes | memoryview) -> int:
        pair = self._nominated.get(1)
        if pair is None:
            return 0
        protocol = pair.protocol
        if type(protocol) is StunProtocol:
            protocol.transport.sendto(data, pair.remote_addr)  # copies what it cannot send at once
        else:
            task = asyncio.ensure_future(protocol.send_data(bytes(data), pair.remote_addr))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        return len(data)


class PacketSender:
    """One outgoing stream of ready-made packets under an aiortc sender's SSRC, payload type and MID.

    Keeps what its sender reports need (counts, the last timestamp and when it
    went) and the last ``HISTORY`` copies for NACKs, resent as RTX when the
    subscriber negotiated it.
    """

    def __init__(self, sender: RTCRtpSender, keyframe_requested: Callable[[], None], heard: Callable[[], None]) -> None:
        self.sender = sender
        self.keyframe_requested = keyframe_requested
        self.heard = heard
        self.payload_type = 0
        self.clock_rate = 90000
        self.codec_name = ""
        self.packets = 0
        self.octets = 0
        self.retransmitted = 0
        self.keyframe_requests = 0
        self.probe_copies = 0  # extra retransmitted copies of each packet: probes the link's capacity
        self.rtt: float | None = None  # seconds, from the subscriber's reports on this stream
        self.loss: float | None = None  # fraction the subscriber lost since its previous report
        self.rtx_loss = 0.0  # the same for the retransmissions (and a probe's copies)
        self.reports = 0  # receiver reports on this stream so far
        self.remb: int | None = None  # bit/s the subscriber estimates its link carries
        self.wire: Wire | None = None
        self._first_byte = 0x80  # version 2, and the extension bit when the header carries the MID
        self._header_tail = b""  # SSRC and header extensions: the same in every packet
        self._rtx: tuple[int, int] | None = None  # payload type and SSRC of retransmissions
        self._rtx_seq = random.randint(0, 0xFFFF)
        self._history: list[bytes | None] = [None] * HISTORY
        self._last_timestamp = 0
        self._last_sent = 0.0
        self._report_ntp = 0
        self._report_sent = 0.0
        sender._run_rtp = self._run  # type: ignore[method-assign]
        sender._run_rtcp = quiet_rtcp(sender)  # type: ignore[method-assign]
        sender._handle_rtcp_packet = self._on_rtcp  # type: ignore[method-assign]

    @property
    def ssrc(self) -> int:
        return int(self.sender._ssrc)

    async def _run(self, codec: RTCRtpCodecParameters) -> None:
        """Stands in for aiortc's encode loop: learns the negotiated stream, then waits to be stopped."""
        sender = self.sender
        self.payload_type = int(codec.payloadType or 0)
        self.clock_rate = codec.clockRate
        self.codec_name = codec.name
        template = RtpPacket(payload_type=self.payload_type, ssrc=sender._ssrc)
        template.extensions.mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        header = template.serialize(sender._RTCRtpSender__rtp_header_extensions_map)  # type: ignore[attr-defined]
        self._first_byte, self._header_tail = header[0], header[8:]
        rtx_type = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
        self._rtx = (rtx_type, sender._rtx_ssrc) if rtx_type is not None else None
        self.wire = Wire(sender.transport)
        sender._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        finally:
            self.wire = None
            sender._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

    def send(self, sequence_number: int, timestamp: int, marker: int, payload: bytes) -> int:
        """Send one packet now; returns its size (0 when the peer is not connected)."""
        wire = self.wire
        if wire is None:
            return 0
        packet = (
            pack("!BBHI", self._first_byte, (marker << 7) | self.payload_type, sequence_number, timestamp)
            + self._header_tail
            + payload
        )
        if not wire.send_rtp(packet):
            return 0
        self._history[sequence_number % HISTORY] = packet
        for _ in range(self.probe_copies):
            self._resend(sequence_number)
        self.packets += 1
        self.octets += len(payload)
        self._last_timestamp = timestamp
        self._last_sent = time.monotonic()
        return len(packet)

    def sender_report(self) -> RtcpSrPacket:
        """This stream's sender report: counts so far, and the wall clock paired with the RTP clock now."""
        ntp = ntp_now()
        elapsed = time.monotonic() - self._last_sent if self._last_sent else 0.0
        rtp = (self._last_timestamp + int(elapsed * self.clock_rate)) & 0xFFFFFFFF
        self._report_ntp, self._report_sent = (ntp >> 16) & 0xFFFFFFFF, time.time()
        info = RtcpSenderInfo(
            ntp_timestamp=ntp,
            rtp_timestamp=rtp,
            packet_count=self.packets & 0xFFFFFFFF,
            octet_count=self.octets & 0xFFFFFFFF,
        )
        return RtcpSrPacket(ssrc=self.ssrc, sender_info=info)

    async def _on_rtcp(self, packet: Any) -> None:
        self.heard()
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == self.ssrc:
                    self._on_report(report)
                elif self._rtx is not None and report.ssrc == self._rtx[1]:
                    self.rtx_loss = report.fraction_lost / 256
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            for seq in packet.lost:
                self.retransmit(seq)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_FIR, RTCP_PSFB_PLI):
            self.keyframe_requests += 1
            self.keyframe_requested()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            with contextlib.suppress(ValueError):
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
                if self.ssrc in ssrcs:
                    self.remb = bitrate

    def _on_report(self, report: RtcpReceiverInfo) -> None:
        self.loss = report.fraction_lost / 256
        self.reports += 1
        if report.dlsr and report.lsr == self._report_ntp:
            rtt = time.time() - self._report_sent - report.dlsr / 65536
            if rtt >= 0:
                self.rtt = rtt if self.rtt is None else RTT_SMOOTHING * self.rtt + (1 - RTT_SMOOTHING) * rtt

    def retransmit(self, sequence_number: int) -> None:
        if self._resend(sequence_number):
            self.retransmitted += 1

    def _resend(self, sequence_number: int) -> bool:
        """One more copy of a packet sent lately, as RTX when negotiated (receivers drop duplicates)."""
        packet = self._history[sequence_number % HISTORY]
        wire = self.wire
        if packet is None or wire is None or unpack_from("!H", packet, 2)[0] != sequence_number:
            return False
        if self._rtx is not None:
            rtx_type, rtx_ssrc = self._rtx
            header = 8 + len(self._header_tail)
            packet = (
                pack(
                    "!BBHII",
                    self._first_byte,
                    (packet[1] & 0x80) | rtx_type,
                    self._rtx_seq,
                    unpack_from("!I", packet, 4)[0],
                    rtx_ssrc,
                )
                + packet[12:header]
                + pack("!H", sequence_number)
                + packet[header:]
            )
            self._rtx_seq = uint16_add(self._rtx_seq, 1)
        return bool(wire.send_rtp(packet))


class Inbound:
    """One receiver's packets, handled where they arrive: the statistics its reports need, RTX unwrapped,
    NACKs for gaps and REMB for the publisher's encoder, then ``on_packet``. Nothing is depayloaded,
    assembled or decoded."""

    def __init__(self, receiver: RTCRtpReceiver, on_packet: PacketHandler, heard: Callable[[], None]) -> None:
        self.receiver = receiver
        self.on_packet = on_packet
        self.heard = heard
        self.wire: Wire | None = None
        self.streams: dict[int, StreamStatistics] = {}
        self.lsr: dict[int, tuple[int, float]] = {}  # sender's SSRC -> middle of its last report's NTP, when it came
        self.loss = 0.0  # the worst fraction lost by a source between the last two reports
        self.jitter: float | None = None  # seconds, the worst source's
        self._codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        self._rtx_ssrc: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
        receiver._run_rtcp = quiet_rtcp(receiver)  # type: ignore[method-assign]
        receiver._handle_rtcp_packet = self._on_rtcp  # type: ignore[method-assign]
        receiver._handle_rtp_packet = self._on_rtp  # type: ignore[method-assign]

    @property
    def rtcp_ssrc(self) -> int | None:
        return self.receiver._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined,no-any-return]

    async def _on_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        self.handle(packet)

    def handle(self, packet: RtpPacket) -> None:
        receiver = self.receiver
        codec = self._codecs.get(packet.payload_type)
        if codec is None or not receiver._enabled:
            return
        self.heard()
        stream = self.streams.get(packet.ssrc)
        if stream is None:
            stream = self.streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        if is_rtx(codec):
            original_ssrc = self._rtx_ssrc.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or apt not in self._codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
        nacks = receiver._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
        if nacks is not None and nacks.add(packet):
            lost = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=self.rtcp_ssrc or 0, media_ssrc=packet.ssrc)
            lost.lost = sorted(nacks.missing)
            self.send_rtcp(lost)
        estimator = receiver._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=int(time.monotonic() * 1000),
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            if remb is not None:
                self.send_rtcp(
                    RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=self.rtcp_ssrc or 0, media_ssrc=0, fci=pack_remb_fci(*remb))
                )
        try:
            self.on_packet(packet)
        except Exception:
            log.exception("packet handler failed; packet dropped")

    def request_keyframe(self, media_ssrc: int) -> None:
        """A PLI for ``media_ssrc``, to the publisher."""
        self.send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc or 0, media_ssrc=media_ssrc))

    def send_rtcp(self, packet: Any) -> None:
        if self.wire is not None and self.rtcp_ssrc is not None:
            self.wire.send_rtcp(bytes(packet))

    async def _on_rtcp(self, packet: Any) -> None:
        self.heard()
        if isinstance(packet, RtcpSrPacket):
            self.lsr[packet.ssrc] = ((packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF, time.time())

    def reports(self) -> list[RtcpReceiverInfo]:
        """This receiver's report blocks, one per source heard; each reads the loss since the previous."""
        blocks = report_blocks(self.streams, self.lsr)
        self.loss = max((block.fraction_lost / 256 for block in blocks), default=0.0)
        jitters = [self.streams[b.ssrc].jitter / self.streams[b.ssrc]._clockrate for b in blocks]
        self.jitter = max(jitters) if jitters else None
        return blocks

    @property
    def received(self) -> int:
        return sum(stream.packets_received for stream in self.streams.values())


@dataclass
class LinkStats:
    rtt: float | None = None  # seconds
    loss_in: float | None = None  # fraction of what the peer sent that was lost on the way, last second
    loss_out: float | None = None  # the worst fraction the peer reports losing of what it received
    jitter: float | None = None  # seconds


class ForwardingPeer:
    """What a router needs of one RTCPeerConnection: ``PacketSender``s out, ``Inbound`` handlers in, one
    compound RTCP report a second, and the link's figures from the reports.

    Register senders and receivers before the connection starts (before the
    answer is set as local description, or the offerer's answer as remote),
    then call ``start`` once the local description is set.
    """

    def __init__(self, pc: RTCPeerConnection, heard: Callable[[], None], idle_interval: float = IDLE_INTERVAL) -> None:
        self.pc = pc
        self.heard = heard
        self.senders: list[PacketSender] = []
        self.inbound: dict[RTCRtpReceiver, Inbound] = {}
        self.link = LinkStats()
        self._wire: Wire | None = None
        self._totals = (0, 0)  # packets sent and received at the last report
        self.reporting = Reporting(self.report, idle_interval)

    def add_sender(self, sender: RTCRtpSender, keyframe_requested: Callable[[], None]) -> PacketSender:
        packet_sender = PacketSender(sender, keyframe_requested, self.heard)
        self.senders.append(packet_sender)
        return packet_sender

    def add_receiver(self, receiver: RTCRtpReceiver, on_packet: PacketHandler) -> Inbound:
        inbound = self.inbound[receiver] = Inbound(receiver, on_packet, self.heard)
        return inbound

    def start(self) -> None:
        """The connection's transports are known now: take over their datagrams and start reporting."""
        dtls = next(t.sender.transport for t in self.pc.getTransceivers())
        self._wire = Wire(dtls)
        for inbound in self.inbound.values():
            inbound.wire = self._wire
        for protocol in dtls.transport._connection._protocols:
            self._take_datagrams(protocol, dtls)
        self.reporting.start()

    def _take_datagrams(self, protocol: Any, dtls: RTCDtlsTransport) -> None:
        """SRTP packets are handled in the socket's callback; STUN, DTLS and SRTCP go aiortc's way."""
        original = protocol.datagram_received
        inbound: dict[Any, Inbound] = self.inbound  # keyed by receiver; the router's lookup may give None
        router = dtls._rtp_router
        extensions = dtls._rtp_header_extensions_map

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            srtp = dtls._rx_srtp
            if srtp is None or not data or not 127 < data[0] < 192 or is_rtcp(data):
                original(data, addr)
                return
            try:
                packet = RtpPacket.parse(srtp.unprotect(data), extensions)
            except (pylibsrtp.Error, ValueError):
                return
            handler = inbound.get(router.route_rtp(packet))
            if handler is not None:
                handler.handle(packet)

        protocol.datagram_received = datagram_received

    def report(self) -> bool:
        """One compound packet; True if media flowed either way since the previous one."""
        wire = self._wire
        if wire is None or not wire.connected:
            return False
        blocks = [block for inbound in self.inbound.values() for block in inbound.reports()]
        started = [s for s in self.senders if s.wire is not None]
        receiver_ssrc = next((i.rtcp_ssrc for i in self.inbound.values() if i.rtcp_ssrc is not None), None)
        cname = self.pc._RTCPeerConnection__cname  # type: ignore[attr-defined]
        data = compound([s.sender_report() for s in started], blocks, receiver_ssrc, cname)
        if data:
            wire.send_rtcp(data)
        self._update_link()
        totals = (sum(s.packets for s in self.senders), sum(i.received for i in self.inbound.values()))
        flowing, self._totals = totals != self._totals, totals
        return flowing

    def _update_link(self) -> None:
        rtts = [s.rtt for s in self.senders if s.rtt is not None]
        losses_out = [s.loss for s in self.senders if s.loss is not None]
        jitters = [i.jitter for i in self.inbound.values() if i.jitter is not None]
        self.link = LinkStats(
            rtt=max(rtts) if rtts else self.link.rtt,
            loss_in=max((i.loss for i in self.inbound.values()), default=0.0),
            loss_out=max(losses_out) if losses_out else self.link.loss_out,
            jitter=max(jitters) if jitters else None,
        )

    async def close(self) -> None:
        self.reporting.stop()
        if self._wire is not None and self._wire.connected and self.senders:
            with contextlib.suppress(Exception):
                self._wire.send_rtcp(bytes(RtcpByePacket(sources=[s.ssrc for s in self.senders])))
        await self.pc.close()
