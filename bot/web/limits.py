"""Limits on what a request may carry: the body's size and the range of ids.

`BodyLimit` is a pure ASGI middleware in front of the app. A request whose Content-Length is over its route's
limit gets 413 at once, before anything reads the body; a body sent without Content-Length (chunked) is counted as
it arrives and refused with 413 once it passes the limit. Every route allows MAX_BODY_BYTES except the FAQ
editor's entry forms (LARGER_BODIES), whose paraphrases may be long.

Ids in paths, forms and JSON are whole numbers from 1 to MAX_ID (the largest 64-bit integer, the most SQLite and
PostgreSQL store); outside that range they are invalid input (422), never sent to the database.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Form, Path
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024
# The FAQ editor's entry form and its live check carry up to 27,000 characters (paraphrases up to 20,000),
# which URL- or JSON-encoding may make several times larger in bytes.
LARGER_BODIES = ((re.compile(r"(/api)?/faq/(new|check|entries(/[^/]+)?)"), 256 * 1024),)

MAX_ID = 2**63 - 1
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
FormId = Annotated[int, Form(ge=1, le=MAX_ID)]


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may have."""
    for pattern, limit in LARGER_BODIES:
        if pattern.fullmatch(path):
            return limit
    return MAX_BODY_BYTES


class BodyTooLarge(HTTPException):
    """The request body is over its route's limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request is too large: at most {limit // 1024} KB may be sent here.")


class BodyLimit:
    """Refuses request bodies over their route's limit with 413, before they are read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await _refuse(scope, receive, send, limit)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            # Raised where nothing turned it into an answer (the app's handlers answer it as 413 themselves).
            if started:
                raise
            await _refuse(scope, receive, send, limit)


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    from bot.web.errors import error_response

    response = error_response(Request(scope, receive), 413, "Too large", BodyTooLarge(limit).detail)
    await response(scope, receive, send)
