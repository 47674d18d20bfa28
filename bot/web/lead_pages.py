"""The lead view's pages (role lead): the shift at a glance with surge warnings and log-in lock-outs, the roster
with status and capacity changes, and reassigning open tickets. Every change goes through handoff and is audited.

Form actions redirect back to /lead (POST → 303 → GET) with a one-shot notice.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import Field
from starlette.responses import RedirectResponse, Response

from bot.web import csat_api
from bot.web.access import AccessFirstRoute, LeadViewer
from bot.web.incident_pages import incident_desk
from bot.web.lead import LeadError, LeadService
from bot.web.limits import MAX_ID, FormId, PathId
from bot.web.rendering import render, set_notice
from handoff.csat import CsatSettings

router = APIRouter(include_in_schema=False, route_class=AccessFirstRoute)

STATUSES = ("online", "away", "offline")


def _lead(request: Request) -> LeadService:
    """The lead service create_app made (tests may replace it)."""
    lead: LeadService = request.app.state.lead
    return lead


def _back(message: str, kind: str = "success", anchor: str = "") -> RedirectResponse:
    response = RedirectResponse(f"/lead{anchor}", status_code=303)
    set_notice(response, message, kind)
    return response


@router.get("/lead")
def lead_page(request: Request, viewer: LeadViewer) -> Response:
    lead = _lead(request)
    shift = lead.shift()
    roster = lead.roster()
    return render(
        request, "lead.html", viewer, shift=shift, roster=roster, tickets=lead.open_tickets(),
        audit=lead.audit(limit=25), statuses=STATUSES, levels=lead.levels, health=lead.channel_health(),
        assignable=[row for row in roster if row.agent.status != "offline"] or roster,
        lockouts=request.app.state.services.accounts.lockouts(),
        open_incidents=incident_desk(request).overview(state="open") if shift.surge.active else [],
        csat=csat_api.current_settings(request.app.state.services.engine),
        csat_summary=csat_api.summary(request.app.state.services.engine),
    )  # fmt: skip


@router.post("/lead/agents/{agent_id}/status")
def set_status(
    request: Request, viewer: LeadViewer, agent_id: PathId, status: Annotated[str, Form(max_length=16)]
) -> Response:
    if status not in STATUSES:
        return _back(f"Choose a status: {', '.join(STATUSES)}.", "error", "#roster")
    try:
        agent = _lead(request).set_status(agent_id, status, by=viewer.account.username)
    except LeadError as exc:
        return _back(str(exc), "error", "#roster")
    return _back(f"{agent.display_name} ({agent.initials}) is {status} now.", anchor="#roster")


@router.post("/lead/agents/{agent_id}/capacity")
def set_capacity(
    request: Request, viewer: LeadViewer, agent_id: PathId, capacity: Annotated[int, Form(ge=0, le=100)]
) -> Response:
    try:
        agent = _lead(request).set_capacity(agent_id, capacity, by=viewer.account.username)
    except LeadError as exc:
        return _back(str(exc), "error", "#roster")
    return _back(f"{agent.display_name} ({agent.initials}) may hold {capacity} tickets at once.", anchor="#roster")


MAX_BULK = 200  # tickets one bulk reassignment may move


@router.post("/lead/tickets/reassign")
def reassign_many(
    request: Request, viewer: LeadViewer, agent_id: FormId,
    ticket_id: Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], Form(max_length=MAX_BULK)] = [],  # noqa: B006
) -> Response:  # fmt: skip
    """An outage's tickets to one agent at once: each is reassigned as by hand; what cannot be is named."""
    lead = _lead(request)
    if not ticket_id:
        return _back("Tick the tickets to reassign first.", "error", "#tickets")
    try:
        agent = lead.agent(agent_id)
    except LeadError as exc:
        return _back(str(exc), "error", "#tickets")
    moved, refused = [], []
    for one in dict.fromkeys(ticket_id):
        try:
            lead.reassign(one, agent_id, by=viewer.account.username)
            moved.append(one)
        except LeadError as exc:
            refused.append(f"#{one}: {exc}")
    message = f"{len(moved)} ticket(s) are with {agent.display_name} ({agent.initials}) now."
    if refused:
        message += " Not moved: " + " ".join(refused)
    return _back(message, "error" if refused and not moved else "success", "#tickets")


@router.post("/lead/tickets/{ticket_id}/reassign")
def reassign(request: Request, viewer: LeadViewer, ticket_id: PathId, agent_id: FormId) -> Response:
    lead = _lead(request)
    try:
        lead.reassign(ticket_id, agent_id, by=viewer.account.username)
        agent = lead.agent(agent_id)
    except LeadError as exc:
        return _back(str(exc), "error", "#tickets")
    return _back(f"Ticket {ticket_id} is with {agent.display_name} ({agent.initials}) now.", anchor="#tickets")


@router.post("/lead/csat")
def set_csat(
    request: Request, viewer: LeadViewer, sample_percent: Annotated[int, Form(ge=0, le=100)],
    enabled: Annotated[bool, Form()] = False, public_close: Annotated[bool, Form()] = False,
) -> Response:  # fmt: skip
    """Surveys on or off, their sample rate, and the public close after a DM resolution (bot/web/csat_api.py)."""
    engine = request.app.state.services.engine
    chosen = CsatSettings(enabled=enabled, sample_percent=sample_percent, public_close=public_close)
    csat_api.save_settings(engine, chosen, by=viewer.account.username)
    said = f"on for {sample_percent}% of resolved tickets" if enabled else "off"
    return _back(f"Satisfaction surveys are {said}; the public close after a DM is {'on' if public_close else 'off'}.",
                 anchor="#csat")  # fmt: skip
