"""The API's description and its documentation page, for holders of a token or a signed-in web user."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from coordinator.auth import bearer_of, is_reader
from coordinator.errors import ApiError
from coordinator.web.security import SignInRequired, current_user

router = APIRouter(include_in_schema=False)


async def _allowed(request: Request) -> bool:
    if is_reader(request, bearer_of(request)):
        return True
    try:
        await current_user(request)
    except SignInRequired:
        return False
    return True


@router.get("/openapi.json")
async def openapi(request: Request) -> JSONResponse:
    if not await _allowed(request):
        raise ApiError(
            401,
            "credential_required",
            "the API description needs a credential: 'Authorization: Bearer <operator or read-only token>', "
            "or sign in to the web pages first",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def docs(request: Request) -> Response:
    if not await _allowed(request):
        return RedirectResponse("/dang-nhap?next=/docs", status_code=303)
    page: HTMLResponse = get_swagger_ui_html(openapi_url="/openapi.json", title="phonghop coordinator API")
    return page
