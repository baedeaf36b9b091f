"""One error shape for the whole API: {"error": {code, message, fields}}.

``message`` is written for a person: what was wrong and how to fix it.
``fields`` maps a request field to its own message, for forms.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 5
DATABASE_DOWN = (
    "the database could not take the change (it does not answer, or its disk is full), so nothing was "
    "changed; try again in a few seconds (if it lasts, check the database server, its disk and the "
    "coordinator's log)"
)
DATABASE_DOWN_VI = (
    "Cơ sở dữ liệu tạm thời không trả lời (hoặc ổ đĩa đầy): trang này chưa hiện được và chưa có gì thay đổi. "
    "Thử lại sau vài giây; nếu vẫn lỗi, báo kỹ thuật viên kiểm tra máy chủ cơ sở dữ liệu và ổ đĩa."
)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.headers = headers


def error_body(code: str, message: str, fields: dict[str, str] | None = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        log.warning(
            "%s %s -> %s %s: %s",
            request.method,
            request.url.path,
            exc.status,
            exc.code,
            exc.message,
        )
        return JSONResponse(
            error_body(exc.code, exc.message, exc.fields),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields: dict[str, str] = {}
        for item in exc.errors():
            if item.get("type") == "json_invalid":
                loc = item.get("loc", ())
                where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
                detail = item.get("ctx", {}).get("error", item["msg"])
                fields["body"] = f"the body is not valid JSON{where} ({detail}); send a JSON object"
            else:
                name = _field_name(tuple(item.get("loc", ())))
                fields.setdefault(name, item["msg"])
        message = "; ".join(f"{name}: {text}" for name, text in fields.items())
        log.warning("%s %s -> 422: %s", request.method, request.url.path, message)
        return JSONResponse(error_body("invalid_request", message, fields), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}; see /docs for the API"
        if exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs for the API"
        return JSONResponse(error_body("http_error", message), status_code=exc.status_code, headers=exc.headers)


def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database failed a request (down for a moment, a failover, a full disk). Each request is one
    transaction, so a failed one changed nothing; the media and the live meetings do not need the database."""
    log.error("%s %s -> 503: the database failed: %s", request.method, request.url.path, exc)
    return JSONResponse(
        error_body("database_unavailable", DATABASE_DOWN),
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_SECONDS)},
    )
