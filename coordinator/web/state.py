"""The web pages' own long-lived parts, kept on ``app.state.web``."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from coordinator.ratelimit import TokenBuckets
from coordinator.web.history import History
from coordinator.web.users import Users

# Wrong passwords: from one address 10, then one every 12 s; for one user name 5, then one a minute.
ADDRESS_FAILURES, ADDRESS_EVERY_SECONDS = 10, 12.0
USER_FAILURES, USER_EVERY_SECONDS = 5, 60.0
# Guests' wrong codes or links: from one address 10, then one every 12 s (a million codes stay out of reach).
GUEST_FAILURES, GUEST_EVERY_SECONDS = 10, 12.0


@dataclass
class SignInLimits:
    """Failed sign-ins per address and per user name; a throttled attempt costs no Argon2 hash."""

    addresses: TokenBuckets = field(
        default_factory=lambda: TokenBuckets(rate=1 / ADDRESS_EVERY_SECONDS, burst=ADDRESS_FAILURES)
    )
    names: TokenBuckets = field(default_factory=lambda: TokenBuckets(rate=1 / USER_EVERY_SECONDS, burst=USER_FAILURES))

    def wait(self, address: str, name: str) -> float:
        """Seconds before this address may try this name again (0: now)."""
        return max(self.addresses.wait(address), self.names.wait(name.lower()[:64]))

    def failed(self, address: str, name: str) -> None:
        self.addresses.spend(address)
        self.names.spend(name.lower()[:64])


@dataclass
class WebState:
    users: Users
    history: History
    sign_in_limits: SignInLimits = field(default_factory=SignInLimits)
    guest_entries: TokenBuckets = field(
        default_factory=lambda: TokenBuckets(rate=1 / GUEST_EVERY_SECONDS, burst=GUEST_FAILURES)
    )


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state
