"""Rendering pages: the Jinja2 environment (autoescape on, customer-text, redaction and time filters), the navigation by
role, and one-shot notices carried to the next page in a short-lived cookie."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import Response

from bot.db import as_utc
from bot.decision.personal_data import redact
from bot.web.access import Viewer
from bot.web.app import WEB_DIR
from bot.web.text import plain_customer_text, plain_reason, render_customer_text

FLASH_COOKIE = "carebot_notice"


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    roles: tuple[str, ...]


# The navigation: each page lists the roles that see it (the routes enforce the same roles).
NAVIGATION = (
    NavItem("Queue", "/queue", ("agent", "lead")),
    NavItem("Search", "/search", ("agent", "lead")),
    NavItem("Macros", "/macros", ("agent", "lead")),
    NavItem("Shift", "/lead", ("lead",)),
    NavItem("FAQ", "/faq", ("editor", "lead")),
    NavItem("Unanswered", "/unanswered", ("editor", "lead")),
    NavItem("Reports", "/reports", ("editor", "lead")),
)


def duration(seconds: int | float | None) -> str:
    """A short human duration: 45s, 12m, 3h 05m, 2d 4h; negative values read as overdue by that much."""
    if seconds is None:
        return "—"
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def clock_time(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    moment = as_utc(moment)
    now = datetime.now(UTC)
    if moment.date() == now.date():
        return moment.strftime("%H:%M")
    return moment.strftime("%d %b %H:%M")


def iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return as_utc(moment).isoformat()


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(WEB_DIR / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(customer_text=render_customer_text, one_line=plain_customer_text, duration=duration,
                       clock=clock_time, iso=iso, redacted=redact, plain_reason=plain_reason)  # fmt: skip
    return env


templates = Jinja2Templates(env=_environment())


def set_notice(response: Response, message: str, kind: str = "info") -> None:
    """A notice shown once on the next page (kind: info, success or error)."""
    payload = base64.urlsafe_b64encode(json.dumps({"kind": kind, "message": message[:600]}).encode()).decode()
    response.set_cookie(FLASH_COOKIE, payload, max_age=60, httponly=True, samesite="lax", path="/")


def _take_notice(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
        kind = data["kind"] if data.get("kind") in ("info", "success", "error") else "info"
        return {"kind": kind, "message": str(data["message"])}
    except (ValueError, KeyError, TypeError):
        return None


def render(
    request: Request, template: str, viewer: Viewer | None, status_code: int = 200, **context: Any
) -> Response:
    notice = _take_notice(request)
    nav = [item for item in NAVIGATION if viewer is not None and viewer.may(*item.roles)]
    response = templates.TemplateResponse(
        request,
        template,
        {
            "viewer": viewer, "csrf_token": viewer.csrf_token if viewer else "", "nav": nav, "notice": notice,
            "path": request.url.path, "banner": getattr(request.app.state, "settings", None) and
            request.app.state.settings.web_banner, **context,
        },  # fmt: skip
        status_code=status_code,
    )
    if notice is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response
