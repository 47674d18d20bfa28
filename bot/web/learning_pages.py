"""The lead's view of what agents' labels measure (role lead): per kind of message and per FAQ entry, the count,
the measured precision, its one-sided 95% lower bound and the target, the mode (shadow, automatic, or as the
policy says) and the switches. "Switch to automatic" is refused unless the lower bound reaches the target; every
switch is audited (bot/learning.py, handoff/labels.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from bot.learning import SwitchRefused, evidence, label_store, switch_to_automatic, switch_to_shadow
from bot.web.access import AccessFirstRoute, LeadViewer
from bot.web.rendering import render, set_notice
from handoff.labels import Labels
from knowledge_base.models import entries

router = APIRouter(include_in_schema=False, route_class=AccessFirstRoute)

Scope = Annotated[str, Path(pattern="^(kind|entry)$")]
Key = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _labels(request: Request) -> Labels:
    return label_store(request.app.state.services.engine)


def _target(request: Request) -> float:
    """The live policy's precision target (its newest version, else training_data/policy.yml)."""
    from bot.policy_versions import PolicyVersions

    services = request.app.state.services
    return PolicyVersions(services.engine, services.settings.training_data_dir / "policy.yml").live().target_precision


def _entry_names(request: Request) -> dict[str, str]:
    """FAQ entry id → slug, for the entries' rows."""
    with request.app.state.services.engine.connect() as conn:
        return {str(row.id): row.slug for row in conn.execute(select(entries.c.id, entries.c.slug))}


def _back(message: str, kind: str = "success") -> RedirectResponse:
    response = RedirectResponse("/lead/learning", status_code=303)
    set_notice(response, message, kind)
    return response


@router.get("/lead/learning")
def learning_page(request: Request, viewer: LeadViewer) -> Response:
    labels = _labels(request)
    target = _target(request)
    rows = evidence(labels, target)
    return render(
        request, "learning.html", viewer, kinds=[r for r in rows if r.tally.scope == "kind"],
        entries=[r for r in rows if r.tally.scope == "entry"], target=target, names=_entry_names(request),
        recent=labels.recent(limit=20),
    )  # fmt: skip


@router.post("/lead/learning/{scope}/{key}/automatic")
def to_automatic(request: Request, viewer: LeadViewer, scope: Scope, key: Key) -> Response:
    try:
        switch_to_automatic(_labels(request), scope, key, target=_target(request), by=viewer.account.username)
    except SwitchRefused as exc:
        return _back(f"Not switched: {exc}", "error")
    return _back(f"{scope} {key} is automatic now: the bot answers it itself.")


@router.post("/lead/learning/{scope}/{key}/shadow")
def to_shadow(request: Request, viewer: LeadViewer, scope: Scope, key: Key) -> Response:
    switch_to_shadow(_labels(request), scope, key, by=viewer.account.username)
    return _back(f"{scope} {key} is in shadow now: the bot drafts, agents decide.")
