"""The macros page (/macros) and its JSON API (/api/macros): agents list, save and delete their saved replies;
leads also share them with the team. The ticket page offers them for insertion (bot/web/pages.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel, Field
from starlette.responses import RedirectResponse, Response

from bot.web.access import AccessFirstRoute, AgentViewer
from bot.web.limits import PathId
from bot.web.macros import MAX_BODY, MAX_TITLE, MacroError, MacroService
from bot.web.rendering import render, set_notice

router = APIRouter(include_in_schema=False, route_class=AccessFirstRoute)
api = APIRouter(prefix="/api", tags=["agent console"], route_class=AccessFirstRoute)


def macro_service(request: Request) -> MacroService:
    services = request.app.state.services
    return MacroService(services.engine, services.console.guide)


@router.get("/macros")
def macros_page(request: Request, viewer: AgentViewer) -> Response:
    return render(request, "macros.html", viewer, macros=macro_service(request).available(viewer.account),
                  max_title=MAX_TITLE, max_body=MAX_BODY)  # fmt: skip


@router.post("/macros")
def add_macro(
    request: Request, viewer: AgentViewer, title: Annotated[str, Form(max_length=MAX_TITLE * 2)] = "",
    body: Annotated[str, Form(max_length=MAX_BODY * 2)] = "", shared: Annotated[bool, Form()] = False,
) -> Response:  # fmt: skip
    response = RedirectResponse("/macros", status_code=303)
    try:
        macro = macro_service(request).create(viewer.account, title, body, shared=shared)
    except MacroError as exc:
        set_notice(response, str(exc), "error")
        return response
    set_notice(response, f"Saved the macro \u201c{macro.title}\u201d.", "success")
    return response


@router.post("/macros/{macro_id}/delete")
def delete_macro(request: Request, viewer: AgentViewer, macro_id: PathId) -> Response:
    response = RedirectResponse("/macros", status_code=303)
    try:
        macro_service(request).delete(viewer.account, macro_id)
    except MacroError as exc:
        set_notice(response, str(exc), "error")
        return response
    set_notice(response, "Macro deleted.", "success")
    return response


class MacroIn(BaseModel):
    title: str = Field(max_length=MAX_TITLE * 2)
    body: str = Field(max_length=MAX_BODY * 2)
    shared: bool = False


@api.get("/macros", summary="Your macros and the team's shared ones")
def list_macros(request: Request, viewer: AgentViewer) -> dict[str, Any]:
    return {"macros": [m.to_dict() for m in macro_service(request).available(viewer.account)]}


@api.post("/macros", summary="Save a macro ({customer} and {agent} are filled in per ticket)", status_code=201)
def create_macro(request: Request, viewer: AgentViewer, macro: MacroIn) -> dict[str, Any]:
    return macro_service(request).create(viewer.account, macro.title, macro.body, shared=macro.shared).to_dict()


@api.post("/macros/{macro_id}/delete", summary="Delete one of your macros (a lead: also a shared one)")
def remove_macro(request: Request, viewer: AgentViewer, macro_id: PathId) -> dict[str, Any]:
    macro_service(request).delete(viewer.account, macro_id)
    return {"deleted": macro_id}
