"""Which quality of the program picture each subscriber gets: the higher one while its link carries it.

A room that publishes sends its picture twice, in a higher and a lower quality. For each subscriber the
router reads what its receiver reports of the program stream (the share lost since its previous report)
and, with hysteresis, moves it to the lower quality after two lossy reports in a row, and back up after
a quiet while. A try up that fails at once doubles the next wait, up to ``UP_LONGEST``, so a link that
stays thin is probed now and then rather than every few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

DOWN_LOSS = 0.03  # a report with this share lost counts as lossy
LOSSY_REPORTS = 2  # lossy reports in a row that move a subscriber down
UP_AFTER = 6.0  # seconds without a lossy report before trying the higher quality again
UP_LONGEST = 16.0
FAILED_TRY = 10.0  # down again this soon after going up: the try failed


@dataclass
class Choice:
    low: bool = False
    reason: str = ""  # why the subscriber is on the lower quality, in Vietnamese (the console shows it)
    lossy: int = 0
    quiet_since: float = 0.0
    wait: float = UP_AFTER
    went_up_at: float | None = None
    last_report: int = 0


class Qualities:
    def __init__(self) -> None:
        self.choices: dict[str, Choice] = {}

    def is_low(self, subscriber: str) -> bool:
        choice = self.choices.get(subscriber)
        return choice is not None and choice.low

    def forget(self, subscriber: str) -> None:
        self.choices.pop(subscriber, None)

    def observe(self, subscriber: str, report: int, loss: float | None, now: float) -> bool:
        """The subscriber's receiver report number ``report`` said ``loss``; True if its quality changed."""
        choice = self.choices.setdefault(subscriber, Choice())
        if loss is None or report == choice.last_report:
            return False
        choice.last_report = report
        lossy = loss >= DOWN_LOSS
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
            choice.quiet_since = now
            return False
        if now - choice.quiet_since < choice.wait:
            return False
        choice.low, choice.reason, choice.went_up_at = False, "", now
        return True
