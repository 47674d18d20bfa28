"""The lead's training sessions on the live desk (role lead): /lead/training lists them, starts one (a scenario of
training_data/scenarios/ or traffic/, a speed, the trainees) and stops the one that runs; /lead/training/{id}
shows its scorecard per trainee, its CSV, and every trainee's reply beside the reference reply with the lead's
review, which the lead sets here.

Everything goes through bot/training/desk.py, the same code as `carebot training start|stop|report|review`:
a start runs that very command in the background, so the session outlives the request that started it.
Form actions redirect back (POST → 303 → GET) with a one-shot notice.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from starlette.responses import RedirectResponse, Response

from bot.settings import Settings
from bot.training import desk
from bot.training.scorecard import render_csv
from bot.training.session import BANNER, TrainingError
from bot.web.access import AccessFirstRoute, LeadViewer
from bot.web.limits import PathId
from bot.web.rendering import render, set_notice

router = APIRouter(include_in_schema=False, route_class=AccessFirstRoute)

SessionId = Annotated[str, Path(min_length=17, max_length=100, pattern=desk.SESSION_ID.pattern)]
VERDICTS = {"good": "good", "needs_work": "needs work"}


def _live(request: Request) -> Settings:
    settings: Settings = request.app.state.services.settings
    return settings


def _on_training_desk(request: Request) -> bool:
    """A training desk does not start training sessions of its own."""
    return _live(request).web_banner == BANNER


def _back(message: str, kind: str = "success", to: str = "/lead/training") -> RedirectResponse:
    response = RedirectResponse(to, status_code=303)
    set_notice(response, message, kind)
    return response


@router.get("/lead/training")
def training_page(request: Request, viewer: LeadViewer) -> Response:
    live = _live(request)
    kept = desk.sessions(live)
    current = next((view for view in kept if view.active), None)
    return render(
        request, "training.html", viewer, sessions=kept, current=current, scenarios=desk.scenario_files(live),
        on_training_desk=_on_training_desk(request), max_trainees=desk.MAX_TRAINEES, max_speed=desk.MAX_SPEED,
    )  # fmt: skip


@router.post("/lead/training/start")
def start_session(
    request: Request, viewer: LeadViewer, scenario: Annotated[str, Form(max_length=200)],
    speed: Annotated[float, Form(gt=0, le=desk.MAX_SPEED)], trainees: Annotated[str, Form(max_length=1500)],
) -> Response:  # fmt: skip
    if _on_training_desk(request):
        return _back("This is a training desk: start training sessions from the live desk.", "error")
    names = [name for part in trainees.replace(",", " ").split() if (name := part.strip())]
    try:
        started = desk.launch(_live(request), scenario, speed=speed, trainees=names)
    except TrainingError as exc:
        return _back(f"Not started: {exc}.", "error")
    return _back(f"Training session {started.id} is starting: {started.scenario} at {speed:g}x for "
                 f"{', '.join(started.trainees)}. Its desk's address and log-ins appear here once it is up.")


@router.post("/lead/training/stop")
def stop_session(request: Request, viewer: LeadViewer) -> Response:
    try:
        stopped = desk.stop(_live(request))
    except TrainingError as exc:
        return _back(f"Not stopped: {exc}.", "error")
    return _back(f"Training session {stopped.id} has ended; its scorecard is kept.", to=f"/lead/training/{stopped.id}")


@router.get("/lead/training/{session_id}")
def session_page(request: Request, viewer: LeadViewer, session_id: SessionId) -> Response:
    live = _live(request)
    try:
        view = desk.session(live, session_id)
    except TrainingError as exc:
        return render(request, "error.html", viewer, status_code=404, title="No such training session",
                      message=str(exc))  # fmt: skip
    card = None
    if view.state not in ("failed",) and not (view.state == "starting" and not view.trainees):
        try:
            card = desk.scorecard(live, session_id)
        except TrainingError:
            card = None  # still starting: its database is not there yet
    return render(
        request, "training_session.html", viewer, session=view, card=card, verdicts=VERDICTS,
        customer=desk.customer_texts(live, session_id) if card else {}, max_comment=desk.MAX_COMMENT,
    )  # fmt: skip


@router.get("/lead/training/{session_id}/scorecard.csv")
def scorecard_csv(request: Request, viewer: LeadViewer, session_id: SessionId) -> Response:
    try:
        card = desk.scorecard(_live(request), session_id)
    except TrainingError as exc:
        return Response(f"{exc}\n", status_code=404, media_type="text/plain; charset=utf-8")
    return Response(
        render_csv(card), media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="training-{session_id}.csv"'},
    )  # fmt: skip


@router.post("/lead/training/{session_id}/tickets/{ticket_id}/review")
def review_reply(
    request: Request, viewer: LeadViewer, session_id: SessionId, ticket_id: PathId,
    verdict: Annotated[str, Form(max_length=16)], comment: Annotated[str, Form(max_length=4000)] = "",
) -> Response:  # fmt: skip
    back = f"/lead/training/{session_id}#ticket-{ticket_id}"
    if verdict not in VERDICTS:
        return _back("Choose good or needs work.", "error", back)
    try:
        desk.review(_live(request), session_id, ticket_id, verdict=verdict, comment=comment.strip(),
                    by=viewer.account.username)  # fmt: skip
    except TrainingError as exc:
        return _back(f"Not saved: {exc}.", "error", back)
    return _back(f"Ticket #{ticket_id}: marked {VERDICTS[verdict]}.", to=back)
