"""The incidents' JSON API under /api/incidents: the same actions as the incident pages (bot/web/incident_pages.py)
through the same service (bot/web/incidents.py). Agents and leads read; leads change. Every POST carries the
session's X-CSRF-Token; errors are {"error": {"status", "title", "detail"}}."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from bot.web.access import AccessFirstRoute, AgentViewer, LeadViewer
from bot.web.incidents import IncidentDesk, incident_dict, suggestion_dict, summary_dict
from bot.web.limits import MAX_ID, PathId
from handoff.incidents import MAX_KEYWORDS, MAX_LINK, MAX_NOTE, MAX_TEMPLATE_CHARS, MAX_TITLE

router = APIRouter(prefix="/api/incidents", tags=["incidents"], route_class=AccessFirstRoute)


def _desk(request: Request) -> IncidentDesk:
    services = request.app.state.services
    return IncidentDesk(services.handoff, services.engine, guide=services.console.guide)


class IncidentIn(BaseModel):
    title: str = Field(max_length=MAX_TITLE * 2, description="What it is, e.g. “Fibre outage, Leeds”.")
    status_note: str = Field(default="", max_length=MAX_NOTE * 2, description="What is known now.")
    keywords: list[str] = Field(
        default_factory=list, max_length=MAX_KEYWORDS * 2, description="Words that offer similar tickets for linking."
    )


class IncidentEditIn(BaseModel):
    title: str | None = Field(default=None, max_length=MAX_TITLE * 2)
    status_note: str | None = Field(default=None, max_length=MAX_NOTE * 2)
    keywords: list[str] | None = Field(default=None, max_length=MAX_KEYWORDS * 2)


class TicketsIn(BaseModel):
    ticket_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(min_length=1, max_length=MAX_LINK)


class TemplateIn(BaseModel):
    text: str = Field(max_length=MAX_TEMPLATE_CHARS * 2, description="The message; the server adds an opening with "
                      "the customer's @handle, the ticket's reference and your ^initials.")  # fmt: skip


class TemplateCheckIn(TemplateIn):
    kind: Literal["update", "closing"] = "update"


@router.get("", summary="Incidents, open ones first, with their ticket counts")
def list_incidents(
    request: Request, viewer: AgentViewer, state: Literal["open", "resolved"] | None = None
) -> dict[str, Any]:
    return {"incidents": [summary_dict(s) for s in _desk(request).overview(state=state)]}


@router.post("", summary="Open an incident (title, status note, keywords)", status_code=201)
def create_incident(request: Request, viewer: LeadViewer, payload: IncidentIn) -> dict[str, Any]:
    incident = _desk(request).create(
        viewer.account, payload.title, status_note=payload.status_note, keywords=payload.keywords
    )
    return incident_dict(incident)


@router.get("/{incident_id}", summary="An incident with its tickets, their states and the tickets offered for linking")
def get_incident(request: Request, viewer: AgentViewer, incident_id: PathId) -> dict[str, Any]:
    desk = _desk(request)
    view = desk.view(incident_id, suggestions=viewer.may("lead"))
    return {**view.to_dict(), "replies": desk.outbox_counts(incident_id)}


@router.get("/{incident_id}/suggestions", summary="Open tickets in no incident whose words match this one's")
def suggestions(request: Request, viewer: LeadViewer, incident_id: PathId) -> dict[str, Any]:
    return {"suggestions": [suggestion_dict(s) for s in _desk(request).suggestions(incident_id)]}


@router.post("/{incident_id}/edit", summary="Change the status note, keywords or title (each change audited)")
def edit_incident(request: Request, viewer: LeadViewer, incident_id: PathId, payload: IncidentEditIn) -> dict[str, Any]:
    incident = _desk(request).edit(
        incident_id, viewer.account, status_note=payload.status_note, keywords=payload.keywords, title=payload.title
    )
    return incident_dict(incident)


@router.post("/{incident_id}/link", summary="Link open tickets (several at once); the others are named with why")
def link(request: Request, viewer: LeadViewer, incident_id: PathId, payload: TicketsIn) -> dict[str, Any]:
    result = _desk(request).link(incident_id, viewer.account, payload.ticket_ids)
    return {"linked": result.linked, "refused": [{"ticket_id": t, "reason": r} for t, r in result.refused.items()]}


@router.post("/{incident_id}/unlink", summary="Take tickets out of the incident (they keep their state)")
def unlink(request: Request, viewer: LeadViewer, incident_id: PathId, payload: TicketsIn) -> dict[str, Any]:
    desk = _desk(request)
    for ticket_id in dict.fromkeys(payload.ticket_ids):
        desk.unlink(incident_id, viewer.account, ticket_id)
    return {"unlinked": list(dict.fromkeys(payload.ticket_ids))}


@router.post("/{incident_id}/check", summary="Tone-check an update or closing template and show a few wordings")
def check_template(
    request: Request, viewer: LeadViewer, incident_id: PathId, payload: TemplateCheckIn
) -> dict[str, Any]:
    return _desk(request).check_template(incident_id, viewer.account, payload.kind, payload.text).to_dict()


@router.post("/{incident_id}/update", summary="Send one update to every linked customer, each worded differently")
def send_update(request: Request, viewer: LeadViewer, incident_id: PathId, payload: TemplateIn) -> dict[str, Any]:
    return _desk(request).send_update(incident_id, viewer.account, payload.text).to_dict()


@router.post("/{incident_id}/resolve", summary="Resolve it: a closing reply under each thread, its tickets resolved")
def resolve(request: Request, viewer: LeadViewer, incident_id: PathId, payload: TemplateIn) -> dict[str, Any]:
    return _desk(request).resolve(incident_id, viewer.account, payload.text).to_dict()
