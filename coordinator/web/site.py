"""The operator's web pages: overview, schedule, meeting console, rooms, communes, sign-in, on the coordinator's app.

``install`` adds the session cookie, the static files and the pages to the
app; ``start`` builds their state once the coordinator's services exist.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordinator.errors import DATABASE_DOWN_VI, database_unavailable
from coordinator.services import Services
from coordinator.settings import Settings
from coordinator.tokens import new_token
from coordinator.web.history import History
from coordinator.web.pages import console, guest, minutes, overview, province, recordings, room, schedule, signin
from coordinator.web.security import Refused, SignInRequired
from coordinator.web.state import WebState
from coordinator.web.users import Users

log = logging.getLogger(__name__)

SESSION_COOKIE = "phonghop_phien"
SESSION_HOURS = 12


def session_secret(data_dir: Path) -> str:
    """The key that signs session cookies: made once, kept in the data folder (mode 0600)."""
    path = data_dir / "web-session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_token() + "\n")
        log.info("created the web session key in %s", path)
    return path.read_text(encoding="utf-8").strip()


class SecureCookies:
    """Adds ``Secure`` to the session cookie on a request that came over HTTPS (or always, by the settings).

    Starlette's SessionMiddleware knows only a fixed ``https_only``; behind nginx the coordinator itself
    speaks plain HTTP, and uvicorn reads the scheme from the proxy's X-Forwarded-Proto.
    """

    def __init__(self, app: ASGIApp, always: bool | None) -> None:
        self.app = app
        self.always = always

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.always is False:
            await self.app(scope, receive, send)
            return
        secure = self.always or scope.get("scheme") == "https"

        async def send_secure(message: Message) -> None:
            if secure and message["type"] == "http.response.start":
                message["headers"] = [
                    (name, value + b"; secure")
                    if name.lower() == b"set-cookie"
                    and value.startswith(SESSION_COOKIE.encode() + b"=")
                    and b"; secure" not in value.lower()
                    else (name, value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_secure)


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings.data_dir),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_HOURS * 3600,
        same_site="lax",
        https_only=False,  # SecureCookies decides per request
    )
    app.add_middleware(SecureCookies, always=settings.cookie_secure)
    app.mount("/static", StaticFiles(directory=Path(__file__).resolve().parent / "static"), name="static")
    for module in (signin, overview, schedule, console, room, province, guest, recordings, minutes):
        app.include_router(module.router)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    # The API's answer (coordinator.errors) for /api, a page in Vietnamese for the rest.
    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database_down(request: Request, exc: Exception) -> Response:
        answer = database_unavailable(request, exc)
        if request.url.path.startswith("/api/"):
            return answer
        from coordinator.web.templating import render

        page = render(request, "error.html", None, status_code=503, message=DATABASE_DOWN_VI)
        page.headers["Retry-After"] = answer.headers["Retry-After"]
        return page

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> HTMLResponse:
        from coordinator.web.templating import render

        log.warning("%s %s refused: %s", request.method, request.url.path, exc.message)
        return render(request, "error.html", None, status_code=exc.status, message=exc.message)


async def start(services: Services) -> WebState:
    from coordinator.database import make_sessionmaker

    sessions = make_sessionmaker(services.engine)
    history = History(sessions)
    await history.close_dangling(services.registry)
    services.connections.listeners.append(history)
    return WebState(users=Users(sessions), history=history)
