"""The web app's assembly: `create_app(settings)` wires the services (accounts, handoff queue, knowledge base,
outbox) into FastAPI with the security headers, the request body limit, the error pages and every route's access
rule checked.

The security headers wrap the whole app, Starlette's own error middleware included, so they are on every answer:
the 500 page of an unexpected error and the 413 of a body over its limit too.

Pages are server-rendered Jinja2 with autoescape; the few scripts are files under /static (the
Content-Security-Policy allows no inline script and nothing from another origin).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.db import make_engine, upgrade
from bot.settings import Settings
from bot.web.access import check_every_route_declares_access
from bot.web.accounts import AccountService, RateLimit
from bot.web.console import ConsoleService, ReplyQueue
from bot.web.limits import BodyLimit

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Adds the security headers to every response; pages and API answers are not cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dict(SECURITY_HEADERS)]
                headers.extend(SECURITY_HEADERS)
                if not is_static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CarebotApp(FastAPI):
    """FastAPI with SecurityHeaders outside everything: Starlette answers an unexpected error (500) from its
    outermost middleware, which an ordinary middleware does not see."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


class LazyKnowledgeBase:
    """The knowledge base (bot.kb.open_knowledge_base), opened on the first suggestion: loading the embedding
    model takes seconds, and a console without the FAQ still works."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stack = ExitStack()
        self._kb: Any = None
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            if self._kb is None:
                from bot.kb import open_knowledge_base

                self._kb = self._stack.enter_context(open_knowledge_base(self._settings, migrate=False))
            return self._kb

    def warm_up(self) -> None:
        """Open it now; a failure is logged and retried on first use."""
        try:
            self()
        except Exception:
            log.exception("the knowledge base could not be opened; suggestions will retry")

    def close(self) -> None:
        # A warm-up still loading the model must not hold up shutdown: its thread is a daemon.
        if not self._lock.acquire(timeout=5):
            return
        try:
            self._stack.close()
            self._kb = None
        finally:
            self._lock.release()


@dataclass
class Services:
    settings: Settings
    engine: Engine
    accounts: AccountService
    handoff: Any  # handoff.service.Handoff
    console: ConsoleService
    on_close: list[Callable[[], None]] = field(default_factory=list)
    knowledge_base: Callable[[], Any] | None = None  # () -> bot.kb.KnowledgeBase, opened on first use

    def close(self) -> None:
        for close in reversed(self.on_close):
            close()
        self.on_close.clear()


def build_services(
    settings: Settings,
    *,
    engine: Engine | None = None,
    handoff: Any = None,
    knowledge_base: Callable[[], Any] | None = None,
    reply_queue: ReplyQueue | None = None,
    transaction: Callable[[Engine], Any] | None = None,
    rate_limit: RateLimit | None = None,
    password_hasher: PasswordHasher | None = None,
    migrate: bool = True,
) -> Services:
    """The services over carebot's database (migrated first unless migrate=False); tests pass their own parts."""
    on_close: list[Callable[[], None]] = []
    if engine is None:
        url = settings.effective_database_url
        if migrate:
            upgrade(url)
        engine = make_engine(url)
        on_close.append(engine.dispose)
    if handoff is None:
        from handoff.service import Handoff

        handoff = Handoff(engine, sla_minutes=settings.sla_first_response_minutes)
    if knowledge_base is None:
        lazy = LazyKnowledgeBase(settings)
        on_close.append(lazy.close)
        knowledge_base = lazy
    accounts = AccountService(
        engine, session_hours=settings.web_session_hours, rate_limit=rate_limit, hasher=password_hasher
    )
    console = ConsoleService(
        handoff, engine, knowledge_base=knowledge_base, reply_queue=reply_queue, transaction=transaction
    )
    return Services(settings, engine, accounts, handoff, console, on_close, knowledge_base)


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The web app. Without `services`, it builds them over carebot's database and closes them on shutdown."""
    from bot.channel.x_limits import limits_for
    from bot.web import api, editor_api, editor_pages, errors, events, lead_api, lead_pages, macro_pages, pages
    from bot.web.csat_api import router as csat_router
    from bot.web.incident_api import router as incident_api_router
    from bot.web.incident_pages import router as incident_pages_router
    from bot.web.lead import LeadService, SurgeLevels
    from bot.web.learning_pages import router as learning_router
    from bot.web.policy_pages import api as policy_api
    from bot.web.policy_pages import router as policy_router
    from bot.web.report_pages import router as reports_router
    from bot.web.training_pages import router as training_router

    owned = services is None
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            services.accounts.forget_attempts()  # log-in attempts older than a week
        if owned and isinstance(services.knowledge_base, LazyKnowledgeBase):
            # Load the embedding model while agents log in, not when the first ticket page asks for suggestions.
            threading.Thread(target=services.knowledge_base.warm_up, name="kb-warm-up", daemon=True).start()
        yield
        if owned:
            app.state.services.close()

    app = CarebotApp(
        title="carebot",
        summary=(
            "carebot's JSON API: the agent console, the FAQ editor, the team lead, incidents and reports, with the "
            "same actions as the pages, for the same logged-in users."
        ),
        description=(
            "Log in through the page at /login; the session cookie authenticates API calls. Every POST needs the "
            "session's CSRF token in the X-CSRF-Token header (GET /api/me returns it)."
        ),
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by the API router behind a log-in
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.editor, app.state.unanswered = editor_pages.build_editor_services(services)
    app.state.lead = LeadService(
        services.handoff, services.engine, SurgeLevels.from_settings(services.settings),
        posting_limits=limits_for(services.settings.x_tier),
    )  # fmt: skip
    app.state.settings = settings
    app.add_middleware(BodyLimit)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(events.router)
    app.include_router(macro_pages.router)
    app.include_router(macro_pages.api)
    app.include_router(editor_pages.router)
    app.include_router(lead_pages.router)
    app.include_router(learning_router)
    app.include_router(policy_router)
    app.include_router(policy_api)
    app.include_router(training_router)
    app.include_router(csat_router)
    app.include_router(editor_api.router)
    app.include_router(lead_api.router)
    app.include_router(reports_router)
    app.include_router(incident_pages_router)
    app.include_router(incident_api_router)
    errors.install(app)
    check_every_route_declares_access(app.routes)
    return app
