"""Log format shared by both programs: one line per event, journald-friendly.

The agent's lines carry its room id and the meeting it is in (``meeting=-``
between meetings), so ``journalctl -u phonghop-agent | grep meeting=12``
finds one meeting's story.
"""

from __future__ import annotations

import logging
import sys


class MeetingContext(logging.Filter):
    """Stamps every record with the meeting the program is in now."""

    def __init__(self) -> None:
        super().__init__()
        self.meeting = "-"

    def filter(self, record: logging.LogRecord) -> bool:
        record.meeting = self.meeting
        return True


MEETING = MeetingContext()


def set_meeting(meeting_id: int | None) -> None:
    MEETING.meeting = "-" if meeting_id is None else str(meeting_id)


def setup_logging(level: str, program: str, context: str = "", with_meeting: bool = False) -> None:
    prefix = f"{program}[{context}]" if context else program
    if with_meeting:
        prefix = f"{program}[{context} meeting=%(meeting)s]"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {prefix} %(name)s: %(message)s"))
    if with_meeting:
        handler.addFilter(MEETING)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx says every request at INFO: the coordinator passes monitoring batches on every few seconds.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
