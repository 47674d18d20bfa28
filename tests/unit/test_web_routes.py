"""Deny by default: every route of the web app declares who may call it, anonymous callers and wrong roles are
refused everywhere but the log-in page, and no state-changing request passes without the session's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.routing import Mount
from web_support import WebDesk, csrf_of, web_desk

from bot.web.access import (
    ALL_ROLES,
    Access,
    AccessFirstRoute,
    AgentViewer,
    app_routes,
    check_every_route_declares_access,
    route_access,
)
from bot.web.accounts import Account
from bot.web.limits import MAX_ID

PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/healthz")}


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[WebDesk]:
    with web_desk(tmp_path) as desk:
        yield desk


def _requests(desk: WebDesk) -> list[tuple[str, str, Access]]:
    ticket_id = desk.escalate()
    values = {"ticket_id": str(ticket_id), "slug": "reset-hub", "agent_id": "1", "version": "1"}
    found = []
    for info in app_routes(desk.app.routes):
        if isinstance(info.route, Mount):
            continue
        rule = route_access(info.route)
        assert rule is not None, info.path
        path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), info.path)
        for method in sorted(info.methods - {"HEAD"}):
            found.append((method, path, rule))
    return found


def _refused(status: int, location: str | None) -> bool:
    return status in (401, 403) or (status == 303 and (location or "").startswith("/login"))


def _account(role: str) -> Account:
    from datetime import UTC, datetime

    return Account(0, "x", "X", role, None, None, True, datetime.now(UTC))


def test_the_enumeration_sees_every_route(desk: WebDesk) -> None:
    paths = {(method, path.split("/tickets/")[0]) for method, path, _ in _requests(desk)}
    assert len(paths) >= 10
    assert ("GET", "/queue") in paths and ("POST", "/api") in paths and ("GET", "/api/queue") in paths
    assert ("POST", "/api/faq/entries/reset-hub/publish") in paths and ("POST", "/api/lead/agents/1/status") in paths


DOCUMENTATION = {"/api/docs", "/api/openapi.json"}  # the API's description itself


def test_every_api_route_is_in_the_openapi_with_a_summary_and_declares_its_access(desk: WebDesk) -> None:
    schema = desk.logged_in("lee").get("/api/openapi.json").json()
    checked = 0
    for info in app_routes(desk.app.routes):
        if not info.path.startswith("/api/") or info.path in DOCUMENTATION:
            continue
        rule = route_access(info.route)
        assert rule is not None and not rule.public and rule.roles, info.path
        for method in info.methods - {"HEAD"}:
            operation = schema["paths"].get(info.path, {}).get(method.lower())
            assert operation is not None, f"{method} {info.path} is not in the OpenAPI description"
            # FastAPI makes up a summary from the function's name; the route must declare its own
            declared = getattr(info.route, "summary", None) or ""
            assert declared.strip() and operation.get("summary") == declared, f"{method} {info.path} has no summary"
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                    bounds = (parameter["schema"].get("minimum"), parameter["schema"].get("maximum"))
                    assert bounds == (1, MAX_ID), f"{method} {info.path}: {parameter['name']} is not a PathId"
            checked += 1
    assert checked >= 40  # the console's, the FAQ editor's and the lead's operations at least
    assert all(path.startswith("/api/") for path in schema["paths"]), "a page is in the API's description"
    documented = {(m.upper(), p) for p, methods in schema["paths"].items() for m in methods}
    assert {("POST", "/api/faq/entries/{slug}/rollback"), ("POST", "/api/lead/tickets/reassign")} <= documented


def test_only_the_log_in_page_and_health_check_are_public(desk: WebDesk) -> None:
    public = {(method, path) for method, path, rule in _requests(desk) if rule.public}
    assert public == PUBLIC
    mounts = [info.path for info in app_routes(desk.app.routes) if isinstance(info.route, Mount)]
    assert mounts == ["/static"]


def test_anonymous_requests_are_refused_everywhere_else(desk: WebDesk) -> None:
    client = desk.client()
    for method, path, rule in _requests(desk):
        if rule.public:
            continue
        response = client.request(method, path, json={} if path.startswith("/api/") else None)
        assert _refused(response.status_code, response.headers.get("location")), (method, path, response.status_code)
        assert "ticket" not in response.text.lower() or response.status_code == 303


def test_wrong_roles_are_refused(desk: WebDesk) -> None:
    users = {"agent": "ann", "editor": "eve", "lead": "lee"}
    checked = 0
    for role in ALL_ROLES:
        client = desk.logged_in(users[role])
        csrf = csrf_of(client)
        for method, path, rule in _requests(desk):
            if rule.public or _account(role).has_role(*rule.roles):
                continue
            response = client.request(method, path, headers={"X-CSRF-Token": csrf}, json={})
            assert response.status_code == 403, (role, method, path, response.status_code)
            checked += 1
    assert checked >= 10  # editors are refused the whole console


def test_state_changing_requests_need_the_csrf_token(desk: WebDesk) -> None:
    client = desk.logged_in("lee")
    posts = [(m, p) for m, p, rule in _requests(desk) if m == "POST" and not rule.public]
    assert len(posts) >= 10
    for method, path in posts:
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            response = client.request(method, path, headers=headers, json={})
            assert response.status_code == 403, (path, headers, response.status_code)
            assert "out of date" in response.text
    form = client.post("/queue/take-next", data={"csrf_token": "forged"})
    assert form.status_code == 403


def test_an_app_with_a_route_that_declares_no_access_does_not_start() -> None:
    app = FastAPI()

    @app.get("/open")
    def forgotten() -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError, match="/open"):
        check_every_route_declares_access(app.routes)

    guarded = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    guarded.router.route_class = AccessFirstRoute

    @guarded.get("/guarded")
    def declared(viewer: AgentViewer) -> dict[str, str]:
        return {}

    check_every_route_declares_access(guarded.routes)


def test_an_app_with_a_route_that_would_read_its_body_before_access_does_not_start() -> None:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/plain")
    def declared(viewer: AgentViewer) -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError, match="AccessFirstRoute"):
        check_every_route_declares_access(app.routes)
