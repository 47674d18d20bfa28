"""The sandbox X's customer page at /: the public timeline in threads, a form to tweet as a customer, and the
care account's direct messages with a form to write one as a customer.

Server-rendered with Jinja2 autoescaping; customer text is escaped, marked `dir="auto"`, and invisible bidi and
zero-width controls are shown as visible markers. A Content-Security-Policy allows only this server's own
style sheet and script file (no inline script); nothing is loaded from the internet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from bot.sandbox.customers import SandboxInputError, post_customer_dm, post_customer_tweet
from bot.sandbox.store import Store, Tweet, is_snowflake

HERE = Path(__file__).resolve().parent
PAGE_TWEETS = 500  # the most recent tweets shown, grouped into threads
PAGE_DMS = 50  # the most recent direct messages shown
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # with "no-referrer", browsers post forms with `Origin: null`
    "X-Frame-Options": "DENY",
}
EMPTY_FORM = {"username": "", "text": "", "reply_to": ""}
EMPTY_DM_FORM = {"username": "", "text": ""}
# Characters that change how text is shown without being seen: bidi controls, zero-width characters, BOM.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def show_invisible(text: str) -> Markup:
    """Escape `text` and show each invisible control as a visible marker such as ⟦U+202E⟧."""
    escaped = str(escape(text))
    return Markup(_INVISIBLE.sub(lambda m: f'<span class="ctl">⟦U+{ord(m.group(0)):04X}⟧</span>', escaped))


@dataclass
class Thread:
    conversation_id: int
    tweets: list[Tweet] = field(default_factory=list)


def threads(tweets: list[Tweet]) -> list[Thread]:
    """Tweets (oldest first) grouped by conversation; the most recently active conversation first."""
    by_conversation: dict[int, Thread] = {}
    for tweet in tweets:
        by_conversation.setdefault(tweet.conversation_id, Thread(tweet.conversation_id)).tweets.append(tweet)
    return sorted(by_conversation.values(), key=lambda thread: thread.tweets[-1].id, reverse=True)


def add_page(app: FastAPI, store: Store) -> None:
    """Mount the page, its timeline fragment and its static files on `app`."""
    templates = Jinja2Templates(directory=HERE / "templates")  # autoescape is on for .html templates
    templates.env.filters["show_invisible"] = show_invisible
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="sandbox-static")

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        tweets = store.timeline(limit=PAGE_TWEETS)
        dms = store.dm_events_newest_first(store.account.id, limit=PAGE_DMS)
        recipients = {user.id: user.username for user in store.users_by_id(dm.recipient_id for dm in dms).values()}
        context = {
            "account": store.account, "threads": threads(tweets), "dms": dms, "recipients": recipients,
            "form": EMPTY_FORM, "dm_form": EMPTY_DM_FORM, "error": None, "dm_error": None, **context,
        }  # fmt: skip
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request, reply_to: str = "") -> HTMLResponse:
        form = {**EMPTY_FORM, "reply_to": reply_to if is_snowflake(reply_to) else ""}
        return render(request, "index.html", form=form)

    @app.get("/timeline", response_class=HTMLResponse, include_in_schema=False)
    async def timeline_fragment(request: Request) -> HTMLResponse:
        return render(request, "timeline.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)  # no icon, and no 404 in the browser's console

    @app.post("/", include_in_schema=False)
    async def compose(request: Request) -> Response:
        if not _same_origin(request):
            return Response("cross-site form posts are refused", status_code=403, media_type="text/plain")
        form_data = await request.form()
        form = {key: str(form_data.get(key, "")) for key in ("username", "text", "reply_to")}
        try:
            post_customer_tweet(store, form["username"], form["text"], form["reply_to"].strip() or None)
        except SandboxInputError as exc:
            return render(request, "index.html", status=400, form=form, error=str(exc))
        return RedirectResponse("/", status_code=303)

    @app.post("/dm", include_in_schema=False)
    async def compose_dm(request: Request) -> Response:
        if not _same_origin(request):
            return Response("cross-site form posts are refused", status_code=403, media_type="text/plain")
        form_data = await request.form()
        dm_form = {key: str(form_data.get(key, "")) for key in ("username", "text")}
        try:
            post_customer_dm(store, dm_form["username"], dm_form["text"])
        except SandboxInputError as exc:
            return render(request, "index.html", status=400, dm_form=dm_form, dm_error=str(exc))
        return RedirectResponse("/#dms", status_code=303)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")
