"""One place that turns errors into answers: JSON under /api/, an HTML page (or a redirect to the log-in page)
everywhere else. Unexpected errors are logged and answered with a plain 500, never a traceback."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from bot.web.access import CsrfFailed, Forbidden, NotLoggedIn
from bot.web.console import ConsoleError, NotFound

log = logging.getLogger(__name__)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def error_response(request: Request, status: int, title: str, message: str, **extra: Any) -> Response:
    """The error as JSON under /api/, as the error page elsewhere."""
    if is_api(request):
        return JSONResponse({"error": {"status": status, "title": title, "detail": message, **extra}}, status)
    from bot.web.rendering import render

    viewer = getattr(request.state, "viewer", None)
    return render(request, "error.html", viewer, status_code=status, title=title, message=message)


async def _not_logged_in(request: Request, exc: Exception) -> Response:
    if is_api(request) or request.method != "GET":
        return error_response(request, 401, "Log in first", "Your session has ended or you are not logged in.")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return error_response(request, 403, "Not allowed", "Your role may not open this page or do this.")


async def _csrf(request: Request, exc: Exception) -> Response:
    return error_response(request, 403, "Form out of date", str(exc.__doc__ or "").strip())


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(request, 404, "Not found", str(exc) or "There is no such ticket.")


async def _console_error(request: Request, exc: Exception) -> Response:
    return error_response(request, 409, "Not done", str(exc))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    titles = {400: "Not understood", 404: "Not found", 405: "Not allowed", 413: "Too large"}
    message = "There is no such page." if exc.status_code == 404 else str(exc.detail)
    response = error_response(request, exc.status_code, titles.get(exc.status_code, "Error"), message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(p) for p in error.get("loc", ()) if p != "body"), "message": error.get("msg", "")}
        for error in exc.errors()
    ]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid input"
    return error_response(request, 422, "Invalid input", summary, problems=problems)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(request, 500, "Something went wrong", "The error was logged. Try again, or tell a lead.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(NotLoggedIn, _not_logged_in)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(CsrfFailed, _csrf)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(ConsoleError, _console_error)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
