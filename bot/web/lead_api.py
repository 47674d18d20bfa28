"""The team lead's JSON API under /api/lead: what the lead view (/lead) shows and does, for scripts and
integrations (leads only, as the page). A thin layer over the lead service (bot/web/lead.py), so every change goes
through handoff, within the same rules, and is audited like the page's: the shift picture with surge warnings and
the X channel's health, the roster, an agent's status and capacity, reassigning one ticket or several at once,
recent changes and log-in lock-outs.

Errors are the API's error JSON: an unknown agent or ticket is 404, a change the state does not allow (an agent at
capacity, a ticket already held by that agent, a disabled agent) 409, invalid input 422.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from bot.db import as_utc
from bot.web.access import LeadViewer
from bot.web.api import ERROR_RESPONSES, Problem, ProblemRoute
from bot.web.lead import LeadError, LeadService
from bot.web.lead_pages import MAX_BULK
from bot.web.limits import MAX_ID, PathId
from handoff import AgentNotFound, InvalidInput, TicketNotFound

router = APIRouter(prefix="/api/lead", tags=["team lead"], route_class=ProblemRoute, responses=ERROR_RESPONSES)

Status = Literal["online", "away", "offline"]
TicketId = Annotated[int, Field(ge=1, le=MAX_ID)]


def _lead(request: Request) -> LeadService:
    lead: LeadService = request.app.state.lead
    return lead


def _run(action: Any) -> Any:
    """The lead service's refusal as the API answers it."""
    try:
        return action()
    except LeadError as exc:
        raise _refused(exc) from exc


def _refused(exc: LeadError) -> Problem:
    if isinstance(exc.__cause__, AgentNotFound | TicketNotFound):
        return Problem(404, "Not found", str(exc))
    if isinstance(exc.__cause__, InvalidInput):
        return Problem(422, "Invalid input", str(exc))
    return Problem(409, "Not done", str(exc))


class StatusIn(BaseModel):
    status: Status


class CapacityIn(BaseModel):
    capacity: int = Field(ge=0, le=100, description="How many open tickets the agent may hold at once")


class ReassignIn(BaseModel):
    agent_id: int = Field(ge=1, le=MAX_ID, description="The agent to give the ticket to")


class BulkReassignIn(BaseModel):
    agent_id: int = Field(ge=1, le=MAX_ID)
    ticket_ids: list[TicketId] = Field(min_length=1, max_length=MAX_BULK)


def _agent(agent: Any, held: int | None = None) -> dict[str, Any]:
    data = {
        "id": agent.id, "username": agent.username, "display_name": agent.display_name, "initials": agent.initials,
        "kind": agent.kind, "status": agent.status, "capacity": agent.capacity, "skills": list(agent.skills),
        "active": agent.active,
    }  # fmt: skip
    if held is not None:
        data.update(holding=held, free=max(agent.capacity - held, 0))
    return data


def _roster_row(row: Any) -> dict[str, Any]:
    return _agent(row.agent, row.open_tickets)


def _iso(value: Any) -> str | None:
    moment = as_utc(value)
    return moment.isoformat() if moment is not None else None


# ---------------------------------------------------------------- reading


@router.get("/shift", summary="The shift at a glance: open work, SLA, the oldest wait, volume, surge, X channel")
def shift(request: Request, viewer: LeadViewer) -> dict[str, Any]:
    """What the top of /lead shows: open tickets by priority, who waits and how long, SLA breaches, the volume of
    the last hour against the hour before, a surge with the on-call agents to bring online, and the X channel's
    health (the worker, replies on their way, what was left alone and why, recent alerts)."""
    lead = _lead(request)
    picture = lead.shift()
    health = lead.channel_health()
    volume = picture.volume
    return {
        "now": _iso(picture.now),
        "open_by_priority": {str(p): n for p, n in picture.open_by_priority.items()}, "open_total": picture.open_total,
        "waiting": picture.waiting, "breached": picture.breached, "oldest_waiting_id": picture.oldest_waiting_id,
        "oldest_waiting_s": picture.oldest_waiting_s, "tickets_last_hour": picture.tickets_last_hour,
        "tickets_hour_before": picture.tickets_hour_before, "online": picture.online,
        "free_capacity": picture.free_capacity,
        "volume": {
            "last_hour": volume.last_hour, "hour_before": volume.hour_before, "ratio": volume.ratio,
            "triaged_last_hour": volume.triaged_last_hour, "escalated_last_hour": volume.escalated_last_hour,
            "escalation_share": volume.escalation_share,
        },
        "surge": {
            "active": picture.surge.active, "reasons": picture.surge.reasons,
            "missing_capacity": picture.surge.missing_capacity,
            "bring_online": [_roster_row(row) for row in picture.surge.proposals],
            "levels": {"volume_ratio": lead.levels.volume_ratio, "min_tweets_per_hour": lead.levels.min_tweets_per_hour,
                       "escalation_share": lead.levels.escalation_share},
        },
        "channel": {
            "worker_seen_s": health.worker_seen_s, "worker_stale": health.worker_stale,
            "replies_waiting": health.replies_waiting, "replies_in_doubt": health.replies_in_doubt,
            "replies_failed_today": health.replies_failed_today,
            "tweets_waiting_for_nlu": health.tweets_waiting_for_nlu,
            "ignored_today": [{"reason": reason, "count": count} for reason, count in health.ignored_today],
            "alerts": [{"kind": a.kind, "message": a.message, "created_at": _iso(a.created_at)} for a in health.alerts],
        },
    }  # fmt: skip


@router.get("/roster", summary="The roster: every active agent's status, capacity and the tickets they hold")
def roster(request: Request, viewer: LeadViewer) -> dict[str, Any]:
    return {"agents": [_roster_row(row) for row in _lead(request).roster()]}


@router.get("/tickets", summary="Open tickets in the order take next follows, with holders, for reassigning")
def open_tickets(
    request: Request, viewer: LeadViewer, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> dict[str, Any]:  # fmt: skip
    """The customer's latest message with personal data replaced, as on /lead."""
    from bot.decision.personal_data import redact

    found = []
    for row in _lead(request).open_tickets(limit=limit):
        t = row.ticket
        found.append({
            "id": t.id, "state": t.state, "priority": t.priority, "skill": t.skill, "source": t.source,
            "customer_handle": t.customer_handle, "latest_message": redact(row.last_customer_text or ""),
            "waiting_s": None if row.waiting_seconds is None else int(row.waiting_seconds),
            "sla_left_s": int(row.sla_seconds_left), "sla_breached": row.sla_breached,
            "answered": t.first_response_at is not None,
            "holder": _agent(row.holder) if row.holder is not None else None,
        })  # fmt: skip
    return {"tickets": found}


@router.get("/audit", summary="Recent changes to the roster and tickets, newest first")
def audit(request: Request, viewer: LeadViewer, limit: Annotated[int, Query(ge=1, le=200)] = 25) -> dict[str, Any]:
    events = _lead(request).audit(limit=limit)
    return {
        "events": [{"id": e.id, "at": _iso(e.at), "actor": e.actor, "action": e.action, "ticket_id": e.ticket_id,
                    "details": e.details} for e in events]
    }  # fmt: skip


@router.get("/lockouts", summary="Clients that reached a log-in limit in the last 24 hours")
def lockouts(request: Request, viewer: LeadViewer) -> dict[str, Any]:
    """The accounts are not locked: a client that keeps failing waits longer after each failure."""
    found = request.app.state.services.accounts.lockouts()
    return {
        "lockouts": [{"client": x.client, "username": x.username, "usernames": x.usernames, "failures": x.failures,
                      "last_failure_at": _iso(x.last_failure_at), "waits_until": _iso(x.waits_until),
                      "account_exists": x.account_exists} for x in found]
    }  # fmt: skip


# ---------------------------------------------------------------- changes (audited by handoff)


@router.post("/agents/{agent_id}/status", summary="Set an agent online, away or offline")
def set_status(request: Request, viewer: LeadViewer, agent_id: PathId, payload: StatusIn) -> dict[str, Any]:
    agent = _run(lambda: _lead(request).set_status(agent_id, payload.status, by=viewer.account.username))
    return _agent(agent)


@router.post("/agents/{agent_id}/capacity", summary="Set how many open tickets an agent may hold at once")
def set_capacity(request: Request, viewer: LeadViewer, agent_id: PathId, payload: CapacityIn) -> dict[str, Any]:
    """Lowering it takes no ticket away."""
    agent = _run(lambda: _lead(request).set_capacity(agent_id, payload.capacity, by=viewer.account.username))
    return _agent(agent)


@router.post("/tickets/reassign", summary="Give several open tickets to one agent (an outage's, within capacity)")
def reassign_many(request: Request, viewer: LeadViewer, payload: BulkReassignIn) -> dict[str, Any]:
    """Each ticket is reassigned as by hand, in the order given (repeats once); what cannot move is named with the
    reason, and the others still move. An unknown agent is refused (404) before any ticket moves."""
    lead = _lead(request)
    agent = _run(lambda: lead.agent(payload.agent_id))
    moved: list[int] = []
    refused: list[dict[str, Any]] = []
    for ticket_id in dict.fromkeys(payload.ticket_ids):
        try:
            lead.reassign(ticket_id, agent.id, by=viewer.account.username)
            moved.append(ticket_id)
        except LeadError as exc:
            refused.append({"ticket_id": ticket_id, "status": _refused(exc).status, "detail": str(exc)})
    return {"agent": _agent(agent), "moved": moved, "refused": refused}


@router.post("/tickets/{ticket_id}/reassign", summary="Give an open ticket to another agent (within their capacity)")
def reassign(request: Request, viewer: LeadViewer, ticket_id: PathId, payload: ReassignIn) -> dict[str, Any]:
    lead = _lead(request)
    ticket = _run(lambda: lead.reassign(ticket_id, payload.agent_id, by=viewer.account.username))
    agent = _run(lambda: lead.agent(payload.agent_id))
    return {"ticket_id": ticket.id, "state": ticket.state, "holder": _agent(agent)}
