"""The JSON API under /api/: the agent console's actions for scripts and integrations, calling the same service
layer as the pages. Authenticated by the session cookie; every POST carries the X-CSRF-Token header.
Errors are {"error": {"status", "title", "detail"}}; the other API modules (the FAQ editor's, the lead's) raise a
`Problem` in routes of a `ProblemRoute` router to answer the same way, with extra fields such as `problems`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from bot.web.access import AccessFirstRoute, AgentViewer, AnyViewer
from bot.web.console import MAX_REPLY_CHARS, ConsoleService, TicketSearch
from bot.web.limits import MAX_ID, PathId

router = APIRouter(prefix="/api", tags=["agent console"], route_class=AccessFirstRoute)


class Problem(Exception):
    """An API answer that is not a success (raised in a route of a ProblemRoute router): the status, a short title,
    a sentence saying why, and any further fields (e.g. `problems`, the current `revision`)."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


class ProblemRoute(AccessFirstRoute):
    """An AccessFirstRoute that answers a raised Problem as the API's error JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer_problems(request: Request) -> Response:
            from bot.web.errors import error_response

            try:
                return await handler(request)
            except Problem as exc:
                return error_response(request, exc.status, exc.title, exc.detail, **exc.extra)

        return answer_problems


class ErrorBody(BaseModel):
    status: int
    title: str
    detail: str
    problems: list[Any] | None = Field(default=None, description="Every problem found, where there are several.")


class ErrorOut(BaseModel):
    error: ErrorBody


# The error answers of the API, for the OpenAPI description (`APIRouter(responses=ERROR_RESPONSES)`).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Not logged in"},
    403: {"model": ErrorOut, "description": "Your role may not do this, or the CSRF token is missing or wrong"},
    404: {"model": ErrorOut, "description": "No such thing (ticket, agent, entry, version)"},
    409: {"model": ErrorOut, "description": "Not done: the state does not allow it, or it changed since you read it"},
    422: {"model": ErrorOut, "description": "Invalid input; `problems` lists each field and rule"},
}


def _console(request: Request) -> ConsoleService:
    console: ConsoleService = request.app.state.services.console
    return console


class ReplyIn(BaseModel):
    text: str = Field(max_length=MAX_REPLY_CHARS, description="The reply's body; the server adds your ^initials.")
    channel: Literal["dm", "public"] | None = Field(
        default=None, description="By DM or in public; by default by DM once the customer has written by DM."
    )


class ToneCheckIn(BaseModel):
    text: str = Field(max_length=MAX_REPLY_CHARS * 2)
    ticket_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Also check against this ticket's earlier replies."
    )
    channel: Literal["dm", "public"] | None = Field(
        default=None, description="Checked as a DM or a public reply; by default where a reply to the ticket goes."
    )


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, viewer: AnyViewer) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/me", summary="Who is logged in, and the CSRF token for POSTs")
def me(viewer: AnyViewer) -> dict[str, Any]:
    account = viewer.account
    return {
        "username": account.username, "display_name": account.display_name, "role": account.role,
        "initials": account.initials, "csrf_token": viewer.csrf_token,
    }  # fmt: skip


@router.get("/queue", summary="Open tickets, most urgent first")
def queue(request: Request, viewer: AgentViewer, limit: int = 200, view: str = "all") -> dict[str, Any]:
    """`view`: all, waiting (nobody holds them), mine, breached (past the first-reply deadline)."""
    items = _console(request).queue(limit=max(1, min(limit, 1000)), view=view, account=viewer.account)
    return {"tickets": [item.to_dict() for item in items]}


@router.get("/search", summary="Tickets, open and closed, by number, handle, words, state, skill, agent and date")
def search(
    request: Request, viewer: AgentViewer, q: str = "", state: str = "", skill: str = "", agent: str = "",
    since: date | None = None, until: date | None = None,
) -> dict[str, Any]:  # fmt: skip
    """`q`: a ticket number (#42), a handle (@maya_k) or words in the messages; `state`: a state, open or closed;
    `agent`: the holder's initials or username; `since`/`until`: creation dates (YYYY-MM-DD), inclusive."""
    query = TicketSearch(text=q[:200], state=state, skill=skill, agent=agent, since=since, until=until)
    return {"tickets": [hit.to_dict() for hit in _console(request).search(query)]}


@router.post("/queue/take-next", summary="Claim the next ticket for you (priority, SLA, age; skills and capacity)")
def take_next(request: Request, viewer: AgentViewer) -> dict[str, Any]:
    return {"ticket_id": _console(request).take_next(viewer.account)}


@router.get("/tickets/{ticket_id}", summary="A ticket with its thread, reasons, earlier contacts and audit")
def ticket(request: Request, viewer: AgentViewer, ticket_id: PathId) -> dict[str, Any]:
    return _console(request).ticket(ticket_id, viewer.account).to_dict()


@router.get("/tickets/{ticket_id}/suggestions", summary="The top FAQ answers for the customer's last message")
def suggestions(request: Request, viewer: AgentViewer, ticket_id: PathId) -> dict[str, Any]:
    console = _console(request)
    found = console.ticket(ticket_id)
    hits = console.suggestions(found.last_customer_text, viewer.account, seed=ticket_id)
    return {"suggestions": [s.to_dict() for s in hits]}


@router.post("/tone-check", summary="The tone check of a reply as it would be posted (signed with your initials)")
def tone_check(request: Request, viewer: AgentViewer, payload: ToneCheckIn) -> dict[str, Any]:
    console = _console(request)
    recent: list[str] = []
    dm = False
    if payload.ticket_id is not None:
        ticket = console.ticket(payload.ticket_id)
        recent = [m.text for m in ticket.messages if m.direction == "out"]
        dm = (payload.channel or ticket.reply_channels[0]) == "dm"
    elif payload.channel is not None:
        dm = payload.channel == "dm"
    return console.tone_check(payload.text, viewer.account, recent_replies=recent, dm=dm).to_dict()


@router.post("/tickets/{ticket_id}/reply", summary="Queue a reply (tone-checked, signed by the server)")
def reply(request: Request, viewer: AgentViewer, ticket_id: PathId, payload: ReplyIn) -> dict[str, Any]:
    report = _console(request).reply(ticket_id, viewer.account, payload.text, channel=payload.channel)
    return {"queued": True, "text": report.text}


def _done(request: Request, viewer: AgentViewer, ticket_id: int, action: str) -> dict[str, Any]:
    console = _console(request)
    getattr(console, action)(ticket_id, viewer.account)
    found = console.ticket(ticket_id)
    return {"ticket_id": ticket_id, "state": found.state, "holder": found.holder}


@router.post("/tickets/{ticket_id}/claim", summary="Hold a ticket")
def claim(request: Request, viewer: AgentViewer, ticket_id: PathId) -> dict[str, Any]:
    return _done(request, viewer, ticket_id, "claim")


@router.post("/tickets/{ticket_id}/release", summary="Put a held ticket back in the queue")
def release(request: Request, viewer: AgentViewer, ticket_id: PathId) -> dict[str, Any]:
    return _done(request, viewer, ticket_id, "release")


@router.post("/tickets/{ticket_id}/resolve", summary="Resolve a ticket")
def resolve(request: Request, viewer: AgentViewer, ticket_id: PathId) -> dict[str, Any]:
    return _done(request, viewer, ticket_id, "resolve")


@router.post("/tickets/{ticket_id}/return-to-bot", summary="Hand the conversation back to the bot")
def return_to_bot(request: Request, viewer: AgentViewer, ticket_id: PathId) -> dict[str, Any]:
    return _done(request, viewer, ticket_id, "return_to_bot")


@router.post("/tickets/{ticket_id}/approve-draft", summary="Send the bot's drafted reply, signed by you")
def approve_draft(request: Request, viewer: AgentViewer, ticket_id: PathId) -> dict[str, Any]:
    return _done(request, viewer, ticket_id, "approve_draft")


@router.post("/tickets/{ticket_id}/reject-draft", summary="Reject the bot's drafted reply")
def reject_draft(request: Request, viewer: AgentViewer, ticket_id: PathId) -> dict[str, Any]:
    return _done(request, viewer, ticket_id, "reject_draft")


@router.post("/tickets/{ticket_id}/move-to-dm", summary="Ask the customer in public to continue in a DM")
def move_to_dm(request: Request, viewer: AgentViewer, ticket_id: PathId) -> dict[str, Any]:
    return _done(request, viewer, ticket_id, "move_to_dm")
