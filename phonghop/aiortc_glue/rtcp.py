"""One RTCP report per peer, in place of aiortc's loop per sender and per receiver.

aiortc starts an RTCP task for every sender and every receiver; a room's peer
has five, so the coordinator received five reports a second from each room and
sent as many back. One compound packet (every sender's report, the first also
carrying the receivers' report blocks, then the senders' names) says the same.
While nothing flows either way the peer reports every two seconds instead of
every second: at most 2.5 s apart, inside the 3 s in which the coordinator
counts a room as heard from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtcpSdesPacket, RtcpSenderInfo, RtcpSourceInfo, RtcpSrPacket

log = logging.getLogger(__name__)

INTERVAL = 1.0  # seconds between reports while media flows
IDLE_INTERVAL = 2.0  # while nothing flows either way
SPREAD = 0.25  # each interval varied by this share either way, so that peers do not report in step
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)


def ntp_now() -> int:
    now = time.time()
    seconds = int(now)
    return ((seconds + NTP_EPOCH_OFFSET) << 32) | int((now - seconds) * (1 << 32))


def quiet_rtcp(endpoint: RTCRtpSender | RTCRtpReceiver) -> Callable[[], Any]:
    """Stands in for one sender's or receiver's RTCP loop: keeps only its start and stop handshake."""
    prefix = "_RTCRtpSender" if isinstance(endpoint, RTCRtpSender) else "_RTCRtpReceiver"

    async def quiet() -> None:
        getattr(endpoint, f"{prefix}__rtcp_started").set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        finally:
            getattr(endpoint, f"{prefix}__rtcp_exited").set()

    return quiet


def report_blocks(
    streams: dict[int, StreamStatistics], last_reports: dict[int, tuple[int, float]]
) -> list[RtcpReceiverInfo]:
    """Report blocks for the sources heard; ``last_reports``: source -> (middle of its last sender report's
    NTP time, when that came). Reading a block's loss starts the next interval."""
    blocks = []
    now = time.time()
    for ssrc, stream in streams.items():
        lsr, when = last_reports.get(ssrc, (0, now))
        delay = now - when
        blocks.append(
            RtcpReceiverInfo(
                ssrc=ssrc,
                fraction_lost=stream.fraction_lost,
                packets_lost=stream.packets_lost,
                highest_sequence=stream.max_seq or 0,
                jitter=stream.jitter,
                lsr=lsr,
                dlsr=int(delay * 65536) if lsr and 0 < delay < 65536 else 0,
            )
        )
    return blocks


def compound(
    reports: list[RtcpSrPacket], blocks: list[RtcpReceiverInfo], receiver_ssrc: int | None, cname: str
) -> bytes:
    """Senders' reports (the first carrying ``blocks``), or a receiver report when nothing is sent, then
    the senders' names."""
    blocks = blocks[:31]
    packets: list[Any] = list(reports)
    if reports:
        reports[0].reports = blocks
        name = cname.encode()
        packets.append(RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=r.ssrc, items=[(1, name)]) for r in reports]))
    elif blocks and receiver_ssrc is not None:
        packets.append(RtcpRrPacket(ssrc=receiver_ssrc, reports=blocks))
    return b"".join(bytes(packet) for packet in packets)


class Reporting:
    """The task that reports for one peer: ``report`` builds and sends one compound packet and says
    whether media flowed since the previous one."""

    def __init__(self, report: Callable[[], bool], idle_interval: float = IDLE_INTERVAL) -> None:
        self._report = report
        self._idle_interval = idle_interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._forever(), name="rtcp")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _forever(self) -> None:
        flowing = True
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(
                    (INTERVAL if flowing else self._idle_interval) * (1 - SPREAD + 2 * SPREAD * random.random())
                )
                try:
                    flowing = self._report()
                except Exception:  # a closing transport; the next turn or the close ends it
                    log.debug("RTCP report failed", exc_info=True)


class TrackReports:
    """One report a peer for aiortc's own senders and receivers (a room's agent encodes and decodes).

    Call before the connection starts; ``start`` once it is connected.
    """

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        for transceiver in pc.getTransceivers():
            transceiver.sender._run_rtcp = quiet_rtcp(transceiver.sender)  # type: ignore[method-assign]
            transceiver.receiver._run_rtcp = quiet_rtcp(transceiver.receiver)  # type: ignore[method-assign]
        self._totals = (0, 0)  # packets sent and received at the last report
        self.reporting = Reporting(self.report)

    def _senders(self) -> Iterable[RTCRtpSender]:
        return (t.sender for t in self.pc.getTransceivers() if t.sender._RTCRtpSender__started)  # type: ignore[attr-defined]

    def _receivers(self) -> Iterable[RTCRtpReceiver]:
        return (t.receiver for t in self.pc.getTransceivers() if t.receiver._RTCRtpReceiver__started)  # type: ignore[attr-defined]

    def report(self) -> bool:
        transport = next((t.sender.transport for t in self.pc.getTransceivers()), None)
        if transport is None or transport.state != "connected":
            return False
        senders, receivers = list(self._senders()), list(self._receivers())
        blocks: list[RtcpReceiverInfo] = []
        received = 0
        for receiver in receivers:
            streams = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
            times = receiver._RTCRtpReceiver__lsr_time  # type: ignore[attr-defined]
            last = {ssrc: (lsr, times[ssrc]) for ssrc, lsr in receiver._RTCRtpReceiver__lsr.items()}  # type: ignore[attr-defined]
            blocks += report_blocks(streams, last)
            received += sum(stream.packets_received for stream in streams.values())
        receiver_ssrc = next((r._RTCRtpReceiver__rtcp_ssrc for r in receivers), None)  # type: ignore[attr-defined]
        cname = self.pc._RTCPeerConnection__cname  # type: ignore[attr-defined]
        data = compound([self._sender_report(s) for s in senders], blocks, receiver_ssrc, cname)
        if data:
            task = asyncio.ensure_future(transport._send_rtp(data))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        totals = (sum(s._RTCRtpSender__packet_count for s in senders), received)  # type: ignore[attr-defined]
        flowing, self._totals = totals != self._totals, totals
        return flowing

    @staticmethod
    def _sender_report(sender: RTCRtpSender) -> RtcpSrPacket:
        ntp = sender._RTCRtpSender__ntp_timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__lsr = (ntp >> 16) & 0xFFFFFFFF  # type: ignore[attr-defined]  # echoed back: the RTT
        sender._RTCRtpSender__lsr_time = time.time()  # type: ignore[attr-defined]
        info = RtcpSenderInfo(
            ntp_timestamp=ntp,
            rtp_timestamp=sender._RTCRtpSender__rtp_timestamp,  # type: ignore[attr-defined]
            packet_count=sender._RTCRtpSender__packet_count & 0xFFFFFFFF,  # type: ignore[attr-defined]
            octet_count=sender._RTCRtpSender__octet_count & 0xFFFFFFFF,  # type: ignore[attr-defined]
        )
        return RtcpSrPacket(ssrc=sender._ssrc, sender_info=info)
