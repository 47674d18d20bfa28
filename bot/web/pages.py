"""The server-rendered pages: log in and out, the agent console's queue and ticket pages, and their form actions.

Form actions redirect back (POST → 303 → GET) with a one-shot notice; a refused reply re-renders the ticket page
with the agent's text still in the box, so nothing typed is lost.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import date
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from bot.web.access import SESSION_COOKIE, AccessFirstRoute, AgentViewer, AnyViewer, PublicViewer, client_address
from bot.web.accounts import LoginRateLimited, LoginRefused
from bot.web.console import QUEUE_VIEWS, SEARCH_LIMIT, SEARCH_STATES, ConsoleError, ConsoleService, TicketSearch
from bot.web.limits import PathId
from bot.web.macro_pages import macro_service
from bot.web.macros import fill, first_name
from bot.web.rendering import render, set_notice

router = APIRouter(include_in_schema=False, route_class=AccessFirstRoute)

LOGIN_CSRF_COOKIE = "carebot_login"


def _console(request: Request) -> ConsoleService:
    console: ConsoleService = request.app.state.services.console
    return console


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (`//evil`, `https://…`, `/\\evil`)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# ---------------------------------------------------------------- logging in


@router.get("/login")
def login_page(request: Request, viewer: PublicViewer, next: str = "/") -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request, "login.html", None, next=_safe_next(next), login_token=token, username="", error=None,
        logged_in_as=viewer.account.display_name if viewer else None,
    )  # fmt: skip
    _set_login_cookie(request, response, token)
    return response


def _set_login_cookie(request: Request, response: Response, token: str) -> None:
    secure = request.app.state.settings.web_secure_cookies
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict", secure=secure, path="/login"
    )


@router.post("/login")
def log_in(
    request: Request,
    viewer: PublicViewer,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    login_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    services = request.app.state.services
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    error: str | None = None
    status = 200
    retry_after: int | None = None
    if not expected or not hmac.compare_digest(expected.encode(), login_token.encode()):
        error, status = "The log-in form was out of date. Please try again.", 403
    else:
        try:
            token, session = services.accounts.log_in(
                username, password, client=client_address(request), replaces=request.cookies.get(SESSION_COOKIE)
            )
        except LoginRateLimited as exc:
            error, status, retry_after = str(exc), 429, exc.retry_after_s
        except LoginRefused as exc:
            error, status = str(exc), 401
        else:
            done = _redirect(_safe_next(next))
            done.set_cookie(
                SESSION_COOKIE, token, max_age=int(services.accounts.session_lifetime.total_seconds()),
                httponly=True, samesite="lax", secure=request.app.state.settings.web_secure_cookies, path="/",
            )  # fmt: skip
            done.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
            return done
    fresh = secrets.token_urlsafe(32)
    response = render(
        request, "login.html", None, status_code=status, next=_safe_next(next), login_token=fresh,
        username=username[:64], error=error, logged_in_as=None,
    )  # fmt: skip
    _set_login_cookie(request, response, fresh)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@router.post("/logout")
def log_out(request: Request, viewer: AnyViewer) -> Response:
    request.app.state.services.accounts.log_out(viewer.session_token)
    response = _redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/healthz")
def health(viewer: PublicViewer) -> Response:
    return JSONResponse({"ok": True})


@router.get("/")
def home(request: Request, viewer: AnyViewer) -> Response:
    if viewer.may("agent"):
        return _redirect("/queue")
    return render(request, "home.html", viewer)


# ---------------------------------------------------------------- the agent console


@router.get("/queue")
def queue_page(request: Request, viewer: AgentViewer, view: str = "all") -> Response:
    console = _console(request)
    counts = console.queue_counts(viewer.account)
    items = console.queue(view=view, account=viewer.account)
    return render(request, "queue.html", viewer, items=items, counts=counts, view=view, views=QUEUE_VIEWS)


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        raise ConsoleError(f"{text.strip()[:20]!r} is not a date: write it as YYYY-MM-DD.") from None


@router.get("/search")
def search_page(
    request: Request, viewer: AgentViewer, q: str = "", state: str = "", skill: str = "", agent: str = "",
    since: str = "", until: str = "",
) -> Response:  # fmt: skip
    form = {"q": q[:200], "state": state, "skill": skill[:64], "agent": agent[:64], "since": since[:20],
            "until": until[:20]}  # fmt: skip
    hits, problem = [], None
    try:
        query = TicketSearch(text=form["q"], state=state, skill=form["skill"], agent=form["agent"],
                             since=_date(form["since"]), until=_date(form["until"]))  # fmt: skip
        if not query.is_empty:
            hits = _console(request).search(query)
    except ConsoleError as exc:
        problem = str(exc)
        query = TicketSearch()
    return render(request, "search.html", viewer, form=form, hits=hits, searched=not query.is_empty,
                  problem=problem, states=SEARCH_STATES, limit=SEARCH_LIMIT)  # fmt: skip


@router.post("/queue/take-next")
def take_next(request: Request, viewer: AgentViewer) -> Response:
    try:
        ticket_id = _console(request).take_next(viewer.account)
    except ConsoleError as exc:
        response = _redirect("/queue")
        set_notice(response, str(exc), "error")
        return response
    if ticket_id is None:
        response = _redirect("/queue")
        set_notice(response, "Nothing is waiting for you right now (skills and capacity considered).")
        return response
    return _redirect(f"/tickets/{ticket_id}")


def _ticket_page(
    request: Request, viewer: AgentViewer, ticket_id: int, *, body: str = "", error: str | None = None,
    status_code: int = 200, insert: int | None = None, channel: str | None = None,
) -> Response:  # fmt: skip
    console = _console(request)
    ticket = console.ticket(ticket_id, viewer.account)
    suggestions = []
    if ticket.is_open:
        suggestions = console.suggestions(ticket.last_customer_text, viewer.account, seed=ticket.id)
    if insert is not None and not body:
        body = next((s.insert_text for s in suggestions if s.entry_id == insert), "")
    channel = channel if channel in ticket.reply_channels else ticket.reply_channels[0]
    tone = console.tone_check(body, viewer.account, dm=channel == "dm") if body else None
    agent = first_name(viewer.account)
    macros = [
        (macro, fill(macro.body, customer=ticket.customer_handle, agent=agent))
        for macro in macro_service(request).available(viewer.account)
    ] if ticket.is_open else []  # fmt: skip
    return render(
        request, "ticket.html", viewer, status_code=status_code, ticket=ticket, suggestions=suggestions,
        body=body, error=error, tone=tone, mine=ticket.held_by(viewer.account),
        signature=console.signature(viewer.account), macros=macros, channel=channel,
    )  # fmt: skip


@router.get("/tickets/{ticket_id}")
def ticket_page(
    request: Request, viewer: AgentViewer, ticket_id: PathId, insert: int | None = None, edit: bool = False
) -> Response:
    body = ""
    if edit:
        ticket = _console(request).ticket(ticket_id)
        if ticket.draft_reply:
            body = _console(request).guide.signature_pattern.sub("", ticket.draft_reply).strip()
    return _ticket_page(request, viewer, ticket_id, insert=insert, body=body)


@router.post("/tickets/{ticket_id}/reply")
def reply(
    request: Request, viewer: AgentViewer, ticket_id: PathId, body: Annotated[str, Form(max_length=4000)] = "",
    channel: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """The reply goes by DM or in public (`channel`, the reply box's choice; empty: the ticket's default)."""
    try:
        _console(request).reply(ticket_id, viewer.account, body, channel=channel or None)
    except ConsoleError as exc:
        return _ticket_page(
            request, viewer, ticket_id, body=body, error=str(exc), status_code=409, channel=channel or None
        )
    response = _redirect(f"/tickets/{ticket_id}")
    set_notice(response, "Reply queued. It goes out through the outbox; its delivery shows in the thread.", "success")
    return response


def _action(request: Request, viewer: AgentViewer, ticket_id: int, name: str, done: str, then: str) -> Response:
    console = _console(request)
    actions = {
        "claim": console.claim, "release": console.release, "resolve": console.resolve,
        "return_to_bot": console.return_to_bot, "reject_draft": console.reject_draft,
        "approve_draft": console.approve_draft, "move_to_dm": console.move_to_dm,
    }  # fmt: skip
    try:
        actions[name](ticket_id, viewer.account)
    except ConsoleError as exc:
        response = _redirect(f"/tickets/{ticket_id}")
        set_notice(response, str(exc), "error")
        return response
    response = _redirect(then)
    set_notice(response, done, "success")
    return response


@router.post("/tickets/{ticket_id}/claim")
def claim(request: Request, viewer: AgentViewer, ticket_id: PathId) -> Response:
    return _action(request, viewer, ticket_id, "claim", "You hold this ticket now.", f"/tickets/{ticket_id}")


@router.post("/tickets/{ticket_id}/release")
def release(request: Request, viewer: AgentViewer, ticket_id: PathId) -> Response:
    return _action(request, viewer, ticket_id, "release", f"Ticket {ticket_id} is back in the queue.", "/queue")


@router.post("/tickets/{ticket_id}/resolve")
def resolve(request: Request, viewer: AgentViewer, ticket_id: PathId) -> Response:
    return _action(request, viewer, ticket_id, "resolve", f"Ticket {ticket_id} resolved.", "/queue")


@router.post("/tickets/{ticket_id}/return-to-bot")
def return_to_bot(request: Request, viewer: AgentViewer, ticket_id: PathId) -> Response:
    return _action(
        request, viewer, ticket_id, "return_to_bot", f"Ticket {ticket_id} returned to the bot.", "/queue"
    )


@router.post("/tickets/{ticket_id}/approve-draft")
def approve_draft(request: Request, viewer: AgentViewer, ticket_id: PathId) -> Response:
    return _action(
        request, viewer, ticket_id, "approve_draft", "Draft approved and queued, signed with your initials.",
        f"/tickets/{ticket_id}",
    )  # fmt: skip


@router.post("/tickets/{ticket_id}/reject-draft")
def reject_draft(request: Request, viewer: AgentViewer, ticket_id: PathId) -> Response:
    return _action(
        request, viewer, ticket_id, "reject_draft", "Draft rejected. Write the reply yourself.", f"/tickets/{ticket_id}"
    )


@router.post("/tickets/{ticket_id}/move-to-dm")
def move_to_dm(request: Request, viewer: AgentViewer, ticket_id: PathId) -> Response:
    return _action(
        request, viewer, ticket_id, "move_to_dm", "Asked the customer to continue in a direct message.",
        f"/tickets/{ticket_id}",
    )  # fmt: skip


@router.get("/api/docs")
def api_docs(request: Request, viewer: AnyViewer) -> Response:
    schema = request.app.openapi()
    operations = [
        {"method": method.upper(), "path": path, "summary": op.get("summary", ""), "doc": op.get("description", "")}
        for path, methods in schema.get("paths", {}).items()
        for method, op in methods.items()
    ]
    return render(request, "api_docs.html", viewer, operations=operations, info=schema.get("info", {}))
