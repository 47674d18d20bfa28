"""Who may call which route: every route declares its access with exactly one `Access` dependency, and the app
refuses to start when a route has none (deny by default).

`Access` finds the session from the cookie, checks the role, and on state-changing methods the CSRF token
(the `csrf_token` form field or the X-CSRF-Token header, compared with the session's in constant time).
Every route is an `AccessFirstRoute`, which checks its rule before FastAPI reads the request body: a caller who
is not allowed is refused (401, 403) whatever the body holds, and their body is never parsed. Forms may not
carry files.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount

from bot.web.accounts import Account, Session

if TYPE_CHECKING:
    from fastapi.dependencies.models import Dependant

SESSION_COOKIE = "carebot_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ALL_ROLES = ("agent", "editor", "lead")


class NotLoggedIn(Exception):
    """Log in first."""


class Forbidden(Exception):
    """Your role may not do this."""


class CsrfFailed(Exception):
    """The form is out of date (its security token does not match your session). Reload the page and try again."""


@dataclass(frozen=True)
class Viewer:
    """The logged-in user of a request."""

    account: Account
    csrf_token: str
    session_token: str

    @property
    def role(self) -> str:
        return self.account.role

    def may(self, *roles: str) -> bool:
        return self.account.has_role(*roles)


def client_address(request: Request) -> str:
    """The client's address, as the log-in rate limit counts it: the connection's peer, or, when the peer is a
    trusted proxy (CAREBOT_WEB_TRUSTED_PROXIES), the address that proxy names in X-Forwarded-For."""
    peer = request.client.host if request.client else "unknown"
    trusted = request.app.state.settings.web_trusted_proxies
    if not trusted:
        return peer
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), tuple(trusted))


@functools.lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _trusted(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(peer: str, forwarded_for: list[str], trusted: tuple[str, ...]) -> str:
    """The client behind trusted proxies. X-Forwarded-For is read from the right (each proxy appends the address
    it was called from): the first address that is not a trusted proxy is the client. Anything left of it was
    written by the client itself and is not believed; an entry that is no IP address ends the walk there."""
    networks = _networks(trusted)
    client = peer
    if not _trusted(peer, networks):
        return client
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        try:
            client = str(ipaddress.ip_address(hop))
        except ValueError:
            break
        if not _trusted(client, networks):
            break
    return client


async def _csrf_token_sent(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form(max_files=0)).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


class Access:
    """A route's access rule: public, or the roles that may call it (a lead may do what an agent does)."""

    def __init__(self, *roles: str, public: bool = False) -> None:
        unknown = set(roles) - set(ALL_ROLES)
        if unknown or (public and roles) or (not public and not roles):
            raise ValueError(f"an access rule is public or names roles from {ALL_ROLES}, not {roles!r}")
        self.roles = roles
        self.public = public

    def __repr__(self) -> str:
        return "Access(public)" if self.public else f"Access({', '.join(self.roles)})"

    async def __call__(self, request: Request) -> Viewer | None:
        if getattr(request.state, "access_checked", None) is self:  # AccessFirstRoute checked it already
            viewer: Viewer | None = request.state.viewer
            return viewer
        viewer = await self._check(request)
        request.state.access_checked = self
        return viewer

    async def _check(self, request: Request) -> Viewer | None:
        session: Session | None = None
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            session = await run_in_threadpool(request.app.state.services.accounts.session, token)
        if self.public:
            request.state.viewer = Viewer(session.account, session.csrf_token, token or "") if session else None
            return request.state.viewer
        if session is None or not token:
            raise NotLoggedIn()
        viewer = Viewer(session.account, session.csrf_token, token)
        request.state.viewer = viewer
        if not session.account.has_role(*self.roles):
            raise Forbidden()
        if request.method not in SAFE_METHODS:
            sent = await _csrf_token_sent(request)
            if not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                raise CsrfFailed()
        return viewer


class AccessFirstRoute(APIRoute):
    """A route that checks its Access rule before FastAPI reads the request body (FastAPI reads and validates the
    body before it solves dependencies). Multipart forms are read with no file parts allowed (400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        rule = route_access(self)

        async def access_first(request: Request) -> Response:
            if rule is not None:
                await rule(request)
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                await request.form(max_files=0)  # kept: FastAPI's form parsing reuses it
            return await handler(request)

        return access_first


# The dependencies routes use: `viewer: AgentViewer`.
AnyViewer = Annotated[Viewer, Depends(Access(*ALL_ROLES))]
AgentViewer = Annotated[Viewer, Depends(Access("agent"))]
EditorViewer = Annotated[Viewer, Depends(Access("editor", "lead"))]
LeadViewer = Annotated[Viewer, Depends(Access("lead"))]
PublicViewer = Annotated[Viewer | None, Depends(Access(public=True))]


def _access_rules(dependant: Dependant) -> list[Access]:
    found = []
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Access):
            found.append(dependency.call)
        found.extend(_access_rules(dependency))
    return found


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    route: BaseRoute  # the route as declared (an APIRoute has the dependencies)


def app_routes(routes: list[BaseRoute]) -> list[RouteInfo]:
    """Every route the app serves, with its full path, including those of included routers."""
    found = []
    for context in iter_route_contexts(routes):
        methods = frozenset(getattr(context, "methods", None) or ())
        found.append(RouteInfo(str(context.path), methods, context.original_route))
    return found


def route_access(route: BaseRoute) -> Access | None:
    """The access rule a route declares; None for a route without one (which the app refuses)."""
    if isinstance(route, APIRoute):
        rules = {id(rule): rule for rule in _access_rules(route.dependant)}
        return next(iter(rules.values())) if len(rules) == 1 else None
    return None


PUBLIC_MOUNTS = ("/static",)  # static files: CSS and JS, nothing personal


def check_every_route_declares_access(routes: list[BaseRoute]) -> None:
    """Raise at start-up when a route has no access rule, or more than one, or would read its body before
    checking it (not an AccessFirstRoute: its router lacks `route_class=AccessFirstRoute`)."""
    for info in app_routes(routes):
        if isinstance(info.route, Mount) and info.path in PUBLIC_MOUNTS:
            continue
        if route_access(info.route) is None:
            raise RuntimeError(f"route {info.path!r} declares no single Access rule")
        if not isinstance(info.route, AccessFirstRoute):
            raise RuntimeError(f"route {info.path!r} is no AccessFirstRoute: it would read bodies before access")
