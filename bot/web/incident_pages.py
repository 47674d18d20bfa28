"""The incident pages: `/incidents` (the list, and a new incident), `/incidents/new` (the form, with keywords from
a surge) and `/incidents/{id}` (its status note, linked tickets with their states, similar tickets offered for
linking, one update to every linked customer, and resolving it with a closing reply under each thread).

Agents and leads read them (an agent sees which outage a customer's ticket belongs to and what the lead has told
customers); only leads change them. Form actions redirect back (POST → 303 → GET) with a one-shot notice.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import Field
from starlette.responses import RedirectResponse, Response

from bot.web.access import AccessFirstRoute, AgentViewer, LeadViewer
from bot.web.console import ConsoleError
from bot.web.incidents import IncidentDesk, IncidentMissing
from bot.web.limits import MAX_ID, PathId
from bot.web.rendering import render, set_notice
from handoff.incidents import MAX_KEYWORD_CHARS, MAX_KEYWORDS, MAX_LINK, MAX_NOTE, MAX_TEMPLATE_CHARS, MAX_TITLE

router = APIRouter(include_in_schema=False, route_class=AccessFirstRoute)

KEYWORDS_FORM = MAX_KEYWORDS * (MAX_KEYWORD_CHARS + 2)
TicketIds = Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], Form(max_length=MAX_LINK)]


def incident_desk(request: Request) -> IncidentDesk:
    services = request.app.state.services
    return IncidentDesk(services.handoff, services.engine, guide=services.console.guide)


def _back(path: str, message: str, kind: str = "success") -> RedirectResponse:
    response = RedirectResponse(path, status_code=303)
    set_notice(response, message, kind)
    return response


def _limits() -> dict[str, int]:
    return {"max_title": MAX_TITLE, "max_note": MAX_NOTE, "max_keywords": KEYWORDS_FORM,
            "max_template": MAX_TEMPLATE_CHARS}  # fmt: skip


@router.get("/incidents")
def incidents_page(request: Request, viewer: AgentViewer) -> Response:
    desk = incident_desk(request)
    return render(request, "incidents.html", viewer, incidents=desk.overview(), new=False, keywords="",
                  **_limits())  # fmt: skip


@router.get("/incidents/new")
def new_incident_page(request: Request, viewer: LeadViewer, surge: bool = False) -> Response:
    """The form on its own; from the lead page's surge box, with the words the surge's tickets share."""
    desk = incident_desk(request)
    keywords = ", ".join(desk.surge_words()) if surge else ""
    return render(request, "incidents.html", viewer, incidents=desk.overview(state="open"), new=True,
                  keywords=keywords, **_limits())  # fmt: skip


@router.post("/incidents")
def create_incident(
    request: Request, viewer: LeadViewer, title: Annotated[str, Form(max_length=MAX_TITLE * 2)] = "",
    status_note: Annotated[str, Form(max_length=MAX_NOTE * 2)] = "",
    keywords: Annotated[str, Form(max_length=KEYWORDS_FORM)] = "",
) -> Response:  # fmt: skip
    try:
        incident = incident_desk(request).create(viewer.account, title, status_note=status_note, keywords=keywords)
    except ConsoleError as exc:
        return _back("/incidents/new", f"Not created: {exc}", "error")
    return _back(f"/incidents/{incident.id}", f"Incident \u201c{incident.title}\u201d is open. Link its tickets below.")


@router.get("/incidents/{incident_id}")
def incident_page(request: Request, viewer: AgentViewer, incident_id: PathId) -> Response:
    desk = incident_desk(request)
    view = desk.view(incident_id, suggestions=viewer.may("lead"))
    return render(request, "incident.html", viewer, view=view, incident=view.incident,
                  replies=desk.outbox_counts(incident_id), **_limits())  # fmt: skip


@router.post("/incidents/{incident_id}/edit")
def edit_incident(
    request: Request, viewer: LeadViewer, incident_id: PathId,
    status_note: Annotated[str, Form(max_length=MAX_NOTE * 2)] = "",
    keywords: Annotated[str, Form(max_length=KEYWORDS_FORM)] = "",
) -> Response:  # fmt: skip
    desk = incident_desk(request)
    path = f"/incidents/{incident_id}"
    try:
        desk.edit(incident_id, viewer.account, status_note=status_note, keywords=keywords)
    except IncidentMissing:
        raise
    except ConsoleError as exc:
        return _back(path, f"Not saved: {exc}", "error")
    return _back(path + "#note", "Status note and keywords saved.")


@router.post("/incidents/{incident_id}/link")
def link_tickets(request: Request, viewer: LeadViewer, incident_id: PathId, ticket_id: TicketIds = []) -> Response:  # noqa: B006
    path = f"/incidents/{incident_id}"
    if not ticket_id:
        return _back(path + "#suggested", "Tick the tickets to link first.", "error")
    try:
        result = incident_desk(request).link(incident_id, viewer.account, ticket_id)
    except IncidentMissing:
        raise
    except ConsoleError as exc:
        return _back(path, str(exc), "error")
    message = f"{len(result.linked)} ticket{'' if len(result.linked) == 1 else 's'} linked."
    if result.refused:
        message += " Not linked: " + " ".join(result.refused.values())
    return _back(path + "#linked", message, "error" if result.refused and not result.linked else "success")


@router.post("/incidents/{incident_id}/tickets/{ticket_id}/unlink")
def unlink_ticket(request: Request, viewer: LeadViewer, incident_id: PathId, ticket_id: PathId) -> Response:
    path = f"/incidents/{incident_id}"
    try:
        incident_desk(request).unlink(incident_id, viewer.account, ticket_id)
    except IncidentMissing:
        raise
    except ConsoleError as exc:
        return _back(path, str(exc), "error")
    return _back(path + "#linked", f"Ticket {ticket_id} is out of this incident; it keeps its state.")


@router.post("/incidents/{incident_id}/update")
def send_update(
    request: Request, viewer: LeadViewer, incident_id: PathId,
    text: Annotated[str, Form(max_length=MAX_TEMPLATE_CHARS * 2)] = "",
) -> Response:  # fmt: skip
    path = f"/incidents/{incident_id}"
    try:
        report = incident_desk(request).send_update(incident_id, viewer.account, text)
    except IncidentMissing:
        raise
    except ConsoleError as exc:
        return _back(path + "#send-update", str(exc), "error")
    return _back(path + "#linked", report.message(), "error" if report.refused and not report.queued else "success")


@router.post("/incidents/{incident_id}/resolve")
def resolve_incident(
    request: Request, viewer: LeadViewer, incident_id: PathId,
    text: Annotated[str, Form(max_length=MAX_TEMPLATE_CHARS * 2)] = "",
) -> Response:  # fmt: skip
    path = f"/incidents/{incident_id}"
    try:
        report = incident_desk(request).resolve(incident_id, viewer.account, text)
    except IncidentMissing:
        raise
    except ConsoleError as exc:
        return _back(path + "#resolve", str(exc), "error")
    return _back(path, report.message(), "success" if report.resolved else "error")
