"""Server-sent events for the console: `GET /api/events` streams what an agent's open pages need to know without a
reload: the queue's counts (for the tab title) and the newest customer message on the agent's own tickets (for a
notification). One `data:` line of JSON whenever something changed, a comment line as a heartbeat, and the
stream ends after STREAM_SECONDS so the browser reconnects with a fresh check of the session."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from bot.web.access import AccessFirstRoute, AgentViewer
from bot.web.console import ConsoleService

router = APIRouter(prefix="/api", tags=["agent console"], route_class=AccessFirstRoute)

STREAM_SECONDS = 300.0  # then the browser reconnects (EventSource does so by itself) and the session is checked
CHECK_EVERY_S = 1.0  # how often the stream looks for changes
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
RETRY_MS = 2000  # how long the browser waits before it reconnects


@router.get("/events", summary="Server-sent events: queue counts and new customer messages on your tickets")
async def events(request: Request, viewer: AgentViewer, once: bool = False) -> StreamingResponse:
    """`once=true` sends the current state and ends (for scripts and tests)."""
    console: ConsoleService = request.app.state.services.console
    account = viewer.account

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        last: dict[str, Any] | None = None
        started = beat = time.monotonic()
        while time.monotonic() - started < STREAM_SECONDS:
            state = await run_in_threadpool(console.activity, account)
            if state != last:
                yield f"data: {json.dumps(state, separators=(',', ':'))}\n\n"
                last = state
                beat = time.monotonic()
            if once:
                return
            if time.monotonic() - beat >= HEARTBEAT_S:
                yield ": still here\n\n"
                beat = time.monotonic()
            if await request.is_disconnected():
                return
            await asyncio.sleep(CHECK_EVERY_S)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
