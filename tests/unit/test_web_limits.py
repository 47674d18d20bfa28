"""What a request may carry: bodies over their route's limit get 413 before they are read, callers who are not
allowed are refused before their body is parsed, forms carry no files, no id (however large or small) answers 500,
and every answer, the 500 page too, carries the security headers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import params
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from web_support import WebDesk, csrf_of, log_in, web_desk

from bot.web.access import SESSION_COOKIE, app_routes
from bot.web.limits import MAX_BODY_BYTES

TWENTY_MB = 20 * 1024 * 1024


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[WebDesk]:
    with web_desk(tmp_path) as desk:
        yield desk


def _asgi(
    app: Any, method: str, path: str, headers: dict[str, str], chunks: Iterator[bytes]
) -> tuple[int, dict[str, str], bytes, int]:
    """A request straight to the ASGI app, its body sent in chunks as a server would: the answer's status,
    headers and body, and how many body bytes the app read."""
    read = 0
    answer: list[Any] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        answer.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("203.0.113.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    start = next(m for m in answer if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in answer if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, read


def _chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    chunk = b"x" * size
    for _ in range(total // size):
        yield chunk


def _agent_headers(desk: WebDesk) -> dict[str, str]:
    client = desk.logged_in("ann")
    return {"cookie": f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}", "x-csrf-token": csrf_of(client)}


@pytest.mark.parametrize("logged_in", [False, True])
@pytest.mark.parametrize(
    ("path", "content_type"), [("/api/tone-check", "application/json"), ("/login", "multipart/form-data; boundary=b")]
)
def test_a_20_mb_body_is_refused_with_413_before_it_is_read(
    desk: WebDesk, logged_in: bool, path: str, content_type: str
) -> None:
    headers = {"content-type": content_type, "content-length": str(TWENTY_MB)}
    if logged_in:
        headers.update(_agent_headers(desk))
    status, answer_headers, body, read = _asgi(desk.app, "POST", path, headers, _chunks(TWENTY_MB))
    assert status == 413 and read == 0
    assert answer_headers["x-content-type-options"] == "nosniff" and "content-security-policy" in answer_headers
    if path.startswith("/api/"):
        assert b'"title":"Too large"' in body and b"64 KB" in body


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(desk: WebDesk) -> None:
    headers = {"content-type": "application/json", **_agent_headers(desk)}  # no Content-Length: chunked
    status, _, body, read = _asgi(desk.app, "POST", "/api/tone-check", headers, _chunks(TWENTY_MB))
    assert status == 413 and b"Too large" in body
    assert read <= MAX_BODY_BYTES + 16 * 1024


def test_anonymous_api_calls_get_401_whatever_their_body(desk: WebDesk) -> None:
    client = desk.client()
    malformed = client.post("/api/tone-check", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 401 and malformed.json()["error"]["title"] == "Log in first"
    invalid = client.post("/api/tickets/1/reply", json={"text": 5})
    assert invalid.status_code == 401
    # A body streamed without Content-Length is not read at all.
    status, _, _, read = _asgi(
        desk.app, "POST", "/api/tone-check", {"content-type": "application/json"}, _chunks(TWENTY_MB)
    )
    assert status == 401 and read == 0


def test_wrong_roles_and_missing_csrf_tokens_are_refused_before_the_body_is_parsed(desk: WebDesk) -> None:
    editor = desk.logged_in("eve")
    wrong_role = editor.post(
        "/api/tone-check", content=b"{not json", headers={"content-type": "application/json", "x-csrf-token": "x"}
    )
    assert wrong_role.status_code == 403
    agent = desk.logged_in("ann")
    no_token = agent.post("/api/tone-check", content=b"{not json", headers={"content-type": "application/json"})
    assert no_token.status_code == 403 and "out of date" in no_token.text
    with_token = agent.post(
        "/api/tone-check", content=b"{not json", headers={"content-type": "application/json",
                                                          "x-csrf-token": csrf_of(agent)},
    )  # fmt: skip
    assert with_token.status_code == 422  # allowed, so now the body is read and found malformed


def test_forms_carry_no_files(desk: WebDesk) -> None:
    client = desk.client()
    page = client.get("/login")
    token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
    fields = {"username": "ann", "password": "correct horse battery", "login_token": token}
    refused = client.post("/login", data=fields, files={"upload": ("big.bin", b"x" * 10_000)})
    assert refused.status_code == 400 and "files" in refused.text
    assert client.post("/login", data=fields, files={}).status_code == 303  # a multipart form without files is fine

    agent = desk.logged_in("ann")
    csrf = csrf_of(agent)
    upload = agent.post("/queue/take-next", data={"csrf_token": csrf}, files={"upload": ("a.txt", b"hello")})
    assert upload.status_code == 400


def test_the_faq_editor_may_send_long_entries(desk: WebDesk) -> None:
    editor = desk.logged_in("eve")
    paraphrases = "\n".join(["как сбросить роутер снова, пожалуйста"] * 500)  # 18,999 characters, 100 KB encoded
    form = {
        "csrf_token": csrf_of(editor), "slug": "long-entry", "question": "How do I reset my router again?",
        "answer": "Hold the reset button for 15 seconds.", "paraphrases": paraphrases, "tags": "router",
    }  # fmt: skip
    response = editor.post("/faq/new", data=form)
    assert len(response.request.content) > MAX_BODY_BYTES
    assert response.status_code in (303, 422), response.status_code
    assert editor.post("/faq/preview", data=form).status_code == 413  # the same form anywhere else


# ---------------------------------------------------------------- ids

OUT_OF_RANGE = (2**63, 2**64, -1, 0)
# Valid values for every field a request needs, besides the one under test.
VALID = {"slug": "reset-hub", "status": "online", "capacity": 3, "version": 1, "text": "Thanks for waiting.",
         "body": "Thanks for waiting.", "insert": 1, "old": 1, "limit": 5,
         "session_id": "no-such-session"}  # fmt: skip


def _int_fields(route: APIRoute) -> list[tuple[str, str]]:
    """(where, name) of every whole-number input of a route: path, query, form field or JSON field."""
    found = []
    for where, fields in (("path", route.dependant.path_params), ("query", route.dependant.query_params)):
        found += [(where, f.name) for f in fields if _is_int(f.field_info.annotation)]
    for field in route.dependant.body_params:
        if isinstance(field.field_info, params.Form):
            if _is_int(field.field_info.annotation):
                found.append(("form", field.name))
        elif isinstance(field.field_info.annotation, type) and issubclass(field.field_info.annotation, BaseModel):
            model = field.field_info.annotation
            found += [("json", name) for name, info in model.model_fields.items() if _is_int(info.annotation)]
    return found


def _is_int(annotation: Any) -> bool:
    return annotation is int or (getattr(annotation, "__args__", None) or ()) in ((int, type(None)),)


def _call(client: TestClient, csrf: str, route: APIRoute, method: str, where: str, name: str, value: int,
          ids: dict[str, int]) -> Any:  # fmt: skip
    path_values: dict[str, Any] = {**VALID, **ids}
    if where == "path":
        path_values[name] = value
    path = re.sub(r"\{(\w+)\}", lambda m: str(path_values[m.group(1)]), route.path)
    query = {name: value} if where == "query" else {}
    form: dict[str, Any] = {"csrf_token": csrf}
    json: dict[str, Any] | None = None
    for field in route.dependant.body_params:
        if isinstance(field.field_info, params.Form):
            form[field.name] = value if (where, field.name) == ("form", name) else path_values.get(field.name, "x")
        else:  # a JSON body: every model here needs a text at most
            json = {"text": VALID["text"], **({name: value} if where == "json" else {})}
    headers = {"x-csrf-token": csrf}
    if json is not None:
        return client.request(method, path, params=query, json=json, headers=headers)
    return client.request(method, path, params=query, data=form if method == "POST" else None, headers=headers)


def test_no_id_answers_500(desk: WebDesk) -> None:
    ann = desk.services.accounts.by_username("ann")
    assert ann is not None and ann.agent_id is not None
    ids = {"ticket_id": desk.escalate(), "agent_id": ann.agent_id, "incident_id": 1}  # no incident 1: 404 is fine
    client = TestClient(desk.app, base_url="http://testserver", follow_redirects=False, raise_server_exceptions=False)
    log_in(client, "lee")  # a lead may call every route with an id
    csrf = csrf_of(client)
    walked = set()
    for info in app_routes(desk.app.routes):
        if not isinstance(info.route, APIRoute):
            continue
        for where, name in _int_fields(info.route):
            for method in sorted(info.methods - {"HEAD"}):
                for value in OUT_OF_RANGE:
                    response = _call(client, csrf, info.route, method, where, name, value, ids)
                    assert response.status_code < 500, (method, info.path, where, name, value, response.text[:300])
                    if where in ("path", "form", "json") and value != 0 and value != -1:
                        assert response.status_code in (404, 422), (method, info.path, name, value)
                walked.add((info.path, where, name))
    assert len({path for path, where, _ in walked if where == "path"}) >= 20
    assert ("/lead/tickets/{ticket_id}/reassign", "form", "agent_id") in walked
    assert ("/faq/entries/{slug}/rollback", "form", "version") in walked
    assert ("/api/tone-check", "json", "ticket_id") in walked


# ---------------------------------------------------------------- headers on errors


def test_a_500_carries_the_security_headers(desk: WebDesk, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(desk.services.console, "queue", broken)
    client = TestClient(desk.app, base_url="http://testserver", follow_redirects=False, raise_server_exceptions=False)
    log_in(client, "ann")
    for path in ("/queue", "/api/queue"):
        response = client.get(path)
        assert response.status_code == 500 and "the database went away" not in response.text
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"
