"""The lead's policy page (/lead/policy, beside /lead/learning) and its JSON API (/api/lead/policy): the refit the
desk's labels propose (per kind, the labels and the answer bar's coverage, precision and 95% lower bound before and
after, a kind with too few labels keeping its bar), Apply, the policy's versions, the diff of two versions' bars
and Rollback. Leads only; every apply and rollback is a new version with who, when and why, audited
(bot/policy_versions.py). The refit is computed again on the server when it is applied: what is applied is what
the labels say then, never figures the browser sent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import RedirectResponse, Response

from bot.decision.calibration import BarFigures, LabelCalibration, calibrate_on_labels
from bot.learning import label_candidates
from bot.policy_versions import PolicyVersion, PolicyVersionError, PolicyVersions, diff
from bot.web.access import AccessFirstRoute, LeadViewer
from bot.web.api import ERROR_RESPONSES, Problem, ProblemRoute
from bot.web.limits import PathId
from bot.web.rendering import render, set_notice

router = APIRouter(include_in_schema=False, route_class=AccessFirstRoute)
api = APIRouter(prefix="/api/lead/policy", tags=["team lead"], route_class=ProblemRoute, responses=ERROR_RESPONSES)

MAX_REASON = 500
VersionNumber = Annotated[int, Query(ge=1, le=10**9)]


def _versions(request: Request) -> PolicyVersions:
    services = request.app.state.services
    return PolicyVersions(services.engine, services.settings.training_data_dir / "policy.yml")


def proposed_refit(request: Request) -> tuple[LabelCalibration | None, int]:
    """The refit of the live policy on every label, and how many labelled decisions it used (None: no labels)."""
    candidates = label_candidates(request.app.state.services.engine)
    if not candidates:
        return None, 0
    return calibrate_on_labels(candidates, _versions(request).live()), len(candidates)


def _apply(request: Request, by: str, reason: str) -> PolicyVersion:
    refit, count = proposed_refit(request)
    if refit is None or not refit.changed:
        raise PolicyVersionError("The labels propose no change to the live policy's bars: nothing to apply.")
    why = reason.strip() or f"refit on {count} labelled decisions"
    return _versions(request).apply(refit.policy, by=by, reason=why)


# ---------------------------------------------------------------- the page


def _back(message: str, kind: str = "success") -> RedirectResponse:
    response = RedirectResponse("/lead/policy", status_code=303)
    set_notice(response, message, kind)
    return response


@router.get("/lead/policy")
def policy_page(
    request: Request, viewer: LeadViewer, old: VersionNumber | None = None, new: VersionNumber | None = None
) -> Response:
    versions = _versions(request)
    refit, count = proposed_refit(request)
    listed = versions.versions()
    changes = None
    if old is not None and new is not None:
        try:
            changes = diff(versions.get(old).policy, versions.get(new).policy)
        except PolicyVersionError as exc:
            return _back(str(exc), "error")
    return render(
        request, "policy.html", viewer, refit=refit, labelled=count, versions=listed,
        live=listed[0].number if listed else None, old=old, new=new, changes=changes, inf=float("inf"),
    )  # fmt: skip


@router.post("/lead/policy/apply")
def apply_page(
    request: Request, viewer: LeadViewer, reason: Annotated[str, Form(max_length=MAX_REASON)] = ""
) -> Response:
    try:
        applied = _apply(request, viewer.account.username, reason)
    except PolicyVersionError as exc:
        return _back(f"Not applied: {exc}", "error")
    return _back(f"Policy version {applied.number} is live: new desks answer with its bars.")


@router.post("/lead/policy/rollback/{number}")
def rollback_page(
    request: Request, viewer: LeadViewer, number: PathId,
    reason: Annotated[str, Form(max_length=MAX_REASON)] = "",
) -> Response:  # fmt: skip
    try:
        restored = _versions(request).rollback(
            number, by=viewer.account.username, reason=reason.strip() or f"rolled back to version {number}"
        )
    except PolicyVersionError as exc:
        return _back(f"Not rolled back: {exc}", "error")
    return _back(f"Policy version {restored.number} is live: version {number}'s bars.")


# ---------------------------------------------------------------- the JSON API


def _figures(figures: BarFigures) -> dict[str, Any]:
    return {
        "bar": None if figures.bar == float("inf") else figures.bar, "answered": figures.answered,
        "right": figures.right, "coverage": round(figures.coverage, 4),
        "precision": None if figures.precision is None else round(figures.precision, 4),
        "lower_bound": round(figures.lower_bound, 4),
    }  # fmt: skip


def _version(version: PolicyVersion, live: int | None) -> dict[str, Any]:
    return {
        "number": version.number, "action": version.action, "based_on": version.based_on,
        "created_at": version.created_at.isoformat(), "created_by": version.created_by, "reason": version.reason,
        "live": version.number == live, "policy_version": version.policy.version,
    }  # fmt: skip


class ReasonIn(BaseModel):
    reason: str = Field(default="", max_length=MAX_REASON, description="Why (kept with the version)")


@api.get("/refit", summary="The refit the labels propose: per kind, the answer bar's figures before and after")
def refit_api(request: Request, viewer: LeadViewer) -> dict[str, Any]:
    """Per kind: the labelled decisions, those the labels say were right, and at the live bar and at the refitted
    one the coverage, the precision and its one-sided 95% lower bound; `kept` says why a kind keeps its bar."""
    refit, count = proposed_refit(request)
    rows = [] if refit is None else refit.rows
    return {
        "labelled": count, "changes": bool(refit and refit.changed),
        "kinds": [
            {"kind": row.kind, "labelled": row.labelled, "right": row.positives, "before": _figures(row.before),
             "after": _figures(row.after), "kept": row.refused}
            for row in rows
        ],
    }  # fmt: skip


@api.post("/apply", summary="Apply the labels' refit as a new live policy version (audited)")
def apply_api(request: Request, viewer: LeadViewer, payload: ReasonIn) -> dict[str, Any]:
    """409 when the labels propose no change."""
    try:
        applied = _apply(request, viewer.account.username, payload.reason)
    except PolicyVersionError as exc:
        raise Problem(409, "Not applied", str(exc)) from exc
    return _version(applied, applied.number)


@api.get("/versions", summary="The policy's versions, newest (live) first, with who, when and why")
def versions_api(request: Request, viewer: LeadViewer) -> dict[str, Any]:
    listed = _versions(request).versions()
    live = listed[0].number if listed else None
    return {"live": live, "versions": [_version(version, live) for version in listed]}


@api.get("/diff", summary="The bars that differ between two policy versions, old → new")
def diff_api(request: Request, viewer: LeadViewer, old: VersionNumber, new: VersionNumber) -> dict[str, Any]:
    versions = _versions(request)
    try:
        changes = diff(versions.get(old).policy, versions.get(new).policy)
    except PolicyVersionError as exc:
        raise Problem(404, "Not found", str(exc)) from exc
    return {"old": old, "new": new, "changes": [change.__dict__ for change in changes]}


@api.post("/rollback/{number}", summary="Make a new live policy version equal to an older one (audited)")
def rollback_api(request: Request, viewer: LeadViewer, number: PathId, payload: ReasonIn) -> dict[str, Any]:
    try:
        restored = _versions(request).rollback(
            number, by=viewer.account.username, reason=payload.reason.strip() or f"rolled back to version {number}"
        )
    except PolicyVersionError as exc:
        raise Problem(404, "Not found", str(exc)) from exc
    return _version(restored, restored.number)
