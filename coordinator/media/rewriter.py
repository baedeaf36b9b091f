"""One outgoing stream to one room: a slot whose source can change without renegotiation.

Per subscriber the stream keeps its own sequence numbers, timestamps and VP8
picture ids continuous, so a switch of source looks like one stream to the
receiving decoder. A picture that is already flowing keeps flowing from the
old source until the new one's next keyframe (no frozen frame at a floor
change or a change of quality); a stream that starts (a join) waits for its
first keyframe, and everything is held back until that keyframe's first
packet could be sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc.rtp import RtpPacket

from phonghop.vp8 import Vp8Info, with_picture_id

SendPacket = Callable[[int, int, int, bytes], int]  # sequence number, timestamp, marker, payload -> bytes sent
# A packet this many sequence numbers behind the source's newest is dropped (about half a minute of video, more
# of audio: far beyond any reordering).
STALE_AFTER = 0x1000


class SlotStream:
    def __init__(self, room: str, slot: str, kind: str, clock_rate: int, send: SendPacket) -> None:
        self.room = room  # the subscriber
        self.slot = slot
        self.kind = kind
        self.clock_rate = clock_rate
        self._send = send
        self.source: str | None = None
        self.pending: str | None = None  # the source to cut over to at its next keyframe
        self.waiting_keyframe = False
        self._rebase = True
        self._seq_offset = 0
        self._ts_offset = 0
        self._pic_offset = 0
        self._first_seq = 0
        self._out_seq = 0
        self._out_ts = 0
        self._out_pic = 0
        self._last_send = 0.0

    def switch(self, source: str | None) -> bool:
        """Take packets from ``source`` from now on (a flowing picture: from its next keyframe on); True if
        a keyframe is needed."""
        if source == self.source:
            self.pending = None
            return False
        if self.kind == "video" and source is not None and self.source is not None and not self.waiting_keyframe:
            self.pending = source
            return True
        self.source, self.pending = source, None
        self._rebase = True
        self.waiting_keyframe = self.kind == "video" and source is not None
        return self.waiting_keyframe

    def forward(self, packet: RtpPacket, vp8: Vp8Info | None, source: str) -> int:
        if source != self.source:
            if source != self.pending or vp8 is None or not vp8.keyframe:
                return 0
            self.source, self.pending, self._rebase, self.waiting_keyframe = source, None, True, True
        elif self.waiting_keyframe and (vp8 is None or not vp8.keyframe):
            return 0
        now = time.monotonic()
        if self._rebase:
            self._rebase_on(packet, vp8, now)
        else:
            # How far the packet is past the bound, modulo 2^16: beyond half the space it comes before it.
            ahead = (packet.sequence_number - self._first_seq) & 0xFFFF
            if ahead > 0x8000:
                return 0  # a late packet from before the switch (or long overtaken): no place in this stream
            if ahead > STALE_AFTER:
                # The bound follows the source; left at the switch, after half the sequence space (11 minutes
                # of audio) every new packet would look older than it and the stream would stop.
                self._first_seq = (packet.sequence_number - STALE_AFTER) & 0xFFFF
        seq = (packet.sequence_number + self._seq_offset) & 0xFFFF
        ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        payload = packet.payload
        if vp8 is not None and vp8.picture_id is not None:
            pic = (vp8.picture_id + self._pic_offset) & 0x7FFF
            payload = with_picture_id(payload, vp8.picture_id_at, pic)
            self._out_pic = pic
        sent = self._send(seq, ts, packet.marker, payload)
        if sent:
            # Until a keyframe's first packet is out (a peer still connecting sends nothing), keep waiting.
            self.waiting_keyframe = False
            self._out_seq, self._out_ts, self._last_send = seq, ts, now
        return sent

    def _rebase_on(self, packet: RtpPacket, vp8: Vp8Info | None, now: float) -> None:
        """Map the new source's numbering so that it continues where the stream stopped."""
        if self._last_send:
            elapsed = max(1, int((now - self._last_send) * self.clock_rate))
            self._ts_offset = (self._out_ts + elapsed - packet.timestamp) & 0xFFFFFFFF
            self._seq_offset = (self._out_seq + 1 - packet.sequence_number) & 0xFFFF
            if vp8 is not None and vp8.picture_id is not None:
                self._pic_offset = (self._out_pic + 1 - vp8.picture_id) & 0x7FFF
        else:
            self._ts_offset = self._seq_offset = self._pic_offset = 0
        self._first_seq = packet.sequence_number
        self._rebase = False
