"""The lead's settings for customer satisfaction (CSAT) surveys and the public close after a DM resolution, as JSON
(`GET/POST /api/lead/csat-settings`, role lead), and the readers the lead page uses for its form and its summary.

The settings live in handoff_desk_settings (handoff/csat.py): surveys on or off, the sample rate (0-100 % of the
eligible resolved tickets), and whether a thread that moved to DM gets a short public close. Unset: on, 100 %,
on. Every change is audited (`desk_settings`, with what changed from what to what). The worker reads them on
each pass (bot/csat.py), so a change applies within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select

from bot.channel.store import utcnow
from bot.web.access import AccessFirstRoute, LeadViewer
from bot.web.api import ERROR_RESPONSES
from handoff import csat as store
from handoff.models import csat_surveys

router = APIRouter(prefix="/api/lead", tags=["lead"], route_class=AccessFirstRoute, responses=ERROR_RESPONSES)

SUMMARY_DAYS = 7


@dataclass(frozen=True)
class CsatSummary:
    """The last SUMMARY_DAYS of surveys, for the lead page: asked, answered, their average score."""

    asked: int
    answered: int
    average: float | None

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.asked if self.asked else None


def current_settings(engine: Engine) -> store.CsatSettings:
    with engine.connect() as conn:
        return store.read_settings(conn)


def save_settings(engine: Engine, settings: store.CsatSettings, *, by: str) -> store.CsatSettings:
    """Store and audit the lead's choice; InvalidInput (handoff.errors) when a value is out of range."""
    with engine.begin() as conn:
        return store.write_settings(conn, settings, by=by, now=utcnow())


def summary(engine: Engine, *, now: datetime | None = None) -> CsatSummary:
    since = (now or utcnow()) - timedelta(days=SUMMARY_DAYS)
    with engine.connect() as conn:
        asked, answered, average = conn.execute(
            select(
                func.count().filter(csat_surveys.c.state.in_(("asked", "answered", "expired"))),
                func.count().filter(csat_surveys.c.state == "answered"),
                func.avg(csat_surveys.c.score),
            ).where(csat_surveys.c.asked_at >= since)
        ).one()
    return CsatSummary(int(asked), int(answered), None if average is None else round(float(average), 2))


class CsatSettingsOut(BaseModel):
    enabled: bool = Field(description="Whether resolved tickets' customers get one DM question (1-5).")
    sample_percent: int = Field(description="The share of eligible resolved tickets whose customer is asked.")
    public_close: bool = Field(description="Whether a thread that moved to DM gets a short public close.")


class CsatSettingsIn(BaseModel):
    enabled: bool | None = Field(default=None, description="Switch surveys on or off; unset: unchanged.")
    sample_percent: int | None = Field(default=None, ge=0, le=100, description="0-100; unset: unchanged.")
    public_close: bool | None = Field(default=None, description="Post the public close; unset: unchanged.")


def _out(settings: store.CsatSettings) -> dict[str, Any]:
    return settings.to_dict()


@router.get("/csat-settings", summary="The CSAT survey and public-close settings", response_model=CsatSettingsOut)
def get_csat_settings(request: Request, viewer: LeadViewer) -> dict[str, Any]:
    return _out(current_settings(request.app.state.services.engine))


@router.post(
    "/csat-settings",
    summary="Change the CSAT survey and public-close settings (audited)",
    response_model=CsatSettingsOut,
)
def post_csat_settings(request: Request, viewer: LeadViewer, payload: CsatSettingsIn) -> dict[str, Any]:
    engine = request.app.state.services.engine
    changes = {name: value for name, value in payload.model_dump().items() if value is not None}
    settings = replace(current_settings(engine), **changes)
    return _out(save_settings(engine, settings, by=viewer.account.username))
