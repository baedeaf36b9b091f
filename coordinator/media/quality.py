"""Which quality of the program picture each subscriber gets: the higher one while its link carries it.

A room that publishes sends its picture twice, in a higher and a lower quality. For each subscriber the
router reads what its receiver reports of the program stream (the share lost since its previous report)
and, with hysteresis, moves it to the lower quality after two lossy reports in a row. After a quiet
while it probes: for ``PROBE_SECONDS`` and at least ``PROBE_REPORTS`` reports the subscriber's stream is
padded with retransmitted copies a little over the higher quality's rate, which costs a thin link a few
recoverable losses rather than a broken picture. A probe without loss moves it up; a lossy one doubles
the next wait, up to ``UP_LONGEST``.
"""

from __future__ import annotations

from dataclasses import dataclass

DOWN_LOSS = 0.03  # a report with this share lost counts as lossy
LOSSY_REPORTS = 2  # lossy reports in a row that move a subscriber down
UP_AFTER = 6.0  # seconds without a lossy report before probing for the higher quality
UP_LONGEST = 8.0  # a failed probe costs its copies, not the picture: probing stays frequent
PROBE_SECONDS = 2.0
PROBE_REPORTS = 2  # clean reports in a probe: the first may cover mostly the time before it
FAILED_TRY = 10.0  # down again this soon after going up: the try failed


@dataclass
class Choice:
    low: bool = False
    reason: str = ""  # why the subscriber is on the lower quality, in Vietnamese (the console shows it)
    lossy: int = 0
    quiet_since: float = 0.0
    wait: float = UP_AFTER
    went_up_at: float | None = None
    probing_since: float | None = None
    probe_reports: int = 0
    capped: bool = False  # held on the lower quality by the subscriber's stated cap
    last_report: int = 0


class Qualities:
    def __init__(self) -> None:
        self.choices: dict[str, Choice] = {}

    def is_low(self, subscriber: str) -> bool:
        choice = self.choices.get(subscriber)
        return choice is not None and choice.low

    def forget(self, subscriber: str) -> None:
        self.choices.pop(subscriber, None)

    def cap(self, subscriber: str, reason: str | None) -> bool:
        """Hold the subscriber on the lower quality because of its cap (``reason``), or let it go (None);
        True if its quality changed."""
        choice = self.choices.setdefault(subscriber, Choice())
        if reason is not None:
            changed = not choice.low
            choice.low, choice.capped, choice.reason, choice.probing_since = True, True, reason, None
            return changed
        if not choice.capped:
            return False
        choice.capped, choice.low, choice.reason = False, False, ""
        return True

    def observe(self, subscriber: str, report: int, loss: float | None, now: float) -> bool:
        """The subscriber's receiver report number ``report`` said ``loss``; True if its quality changed."""
        choice = self.choices.setdefault(subscriber, Choice())
        if loss is None or report == choice.last_report:
            return False
        choice.last_report = report
        lossy = loss >= DOWN_LOSS
        if choice.capped:
            return False
        if not choice.low:
            choice.lossy = choice.lossy + 1 if lossy else 0
            if choice.lossy < LOSSY_REPORTS:
                return False
            failed_try = choice.went_up_at is not None and now - choice.went_up_at < FAILED_TRY
            choice.wait = min(2 * choice.wait, UP_LONGEST) if failed_try else UP_AFTER
            choice.low, choice.lossy, choice.quiet_since = True, 0, now
            choice.reason = f"mất {loss:.0%} gói tin"
            return True
        if lossy:
            if choice.probing_since is not None:  # the link did not carry the probe
                choice.probing_since, choice.wait = None, min(2 * choice.wait, UP_LONGEST)
            choice.quiet_since = now
            return False
        if choice.probing_since is None:
            if now - choice.quiet_since >= choice.wait:
                choice.probing_since, choice.probe_reports = now, 0
            return False
        choice.probe_reports += 1
        if now - choice.probing_since < PROBE_SECONDS or choice.probe_reports < PROBE_REPORTS:
            return False
        choice.low, choice.reason, choice.went_up_at, choice.probing_since = False, "", now, None
        return True
