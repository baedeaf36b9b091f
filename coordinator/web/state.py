"""The web pages' own long-lived parts, kept on ``app.state.web``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from coordinator.web.history import History
from coordinator.web.users import Users


@dataclass
class WebState:
    users: Users
    history: History


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state
