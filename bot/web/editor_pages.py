"""The FAQ editor's pages (role editor; leads too): the entry list with search, writing an entry with live checks,
publish / unpublish / history with diffs / rollback, "what would the bot do with this tweet?", the unanswered
questions grouped by meaning, the paraphrases proposed from agents' approved drafts (add to the draft, or dismiss),
and the export of training examples from agents' resolutions.

Form actions redirect back (POST → 303 → GET) with a one-shot notice; a refused change re-renders the form with
what the editor typed and every rule it breaks, so nothing typed is lost.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import RedirectResponse, Response

from bot.web.access import AccessFirstRoute, EditorViewer, Viewer
from bot.web.editor import MAX_TWEET_CHARS, EditorError, EditorService, NotFound, Preview, content_from_form
from bot.web.limits import FormId
from bot.web.proposals import NEAR_DUPLICATE, ParaphraseProposals
from bot.web.rendering import render, set_notice
from bot.web.unanswered import UnansweredQuestions, nlu_yaml
from knowledge_base.service import EntryContent

router = APIRouter(include_in_schema=False, route_class=AccessFirstRoute)
_build_lock = threading.Lock()

STATUS_FILTERS = ("draft", "published", "archived")
SHOWN_GROUPS = 60  # the largest groups of unanswered questions on the page


def build_editor_services(services: Any) -> tuple[EditorService, UnansweredQuestions]:
    """The editor's services over the app's Services (create_app calls this once; tests may replace them)."""
    from bot.decision.tone import ToneGuide
    from bot.desk import nlu_client
    from bot.policy_versions import PolicyVersions

    settings = services.settings
    policy = PolicyVersions(services.engine, settings.training_data_dir / "policy.yml").live()  # as the desk's
    guide = ToneGuide.load(settings.training_data_dir / "tone.yml")
    clients: list[Any] = []

    def nlu() -> Any:  # the NLU client, made on the first preview
        with _build_lock:
            if not clients:
                clients.append(nlu_client(settings))
                services.on_close.append(clients[0].close)
        return clients[0]

    answer_models: list[Any] = []

    def answers() -> Any:  # the live answer model, made on the first preview
        from bot.desk import LiveAnswerModel, out_of_scope_texts
        from bot.kb import kb_config

        with _build_lock:
            if not answer_models:
                answer_models.append(
                    LiveAnswerModel(
                        services.knowledge_base().searcher, out_of_scope_texts(settings.training_data_dir, policy),
                        kb_config(settings).embedding_cache_dir,
                    )
                )
        return answer_models[0]

    editor = EditorService(services.knowledge_base, policy, guide, nlu=nlu, answers=answers)
    return editor, UnansweredQuestions(services.engine, services.knowledge_base, policy, guide)


def _services(request: Request) -> tuple[EditorService, UnansweredQuestions]:
    return request.app.state.editor, request.app.state.unanswered


def _editor(request: Request) -> EditorService:
    return _services(request)[0]


def proposals_of(request: Request) -> ParaphraseProposals:
    """The proposed paraphrases over the app's editor service (made on first use)."""
    state = request.app.state
    with _build_lock:
        found = getattr(state, "proposals", None)
        if found is None or found.editor is not state.editor:
            found = state.proposals = ParaphraseProposals(state.services.engine, state.editor)
    return found


def _redirect(path: str, message: str | None = None, kind: str = "success") -> RedirectResponse:
    response = RedirectResponse(path, status_code=303)
    if message:
        set_notice(response, message, kind)
    return response


EntryForm = dict[str, str]


def _form(content: EntryContent | None = None, **overrides: str) -> EntryForm:
    form = {"slug": "", "question": "", "answer": "", "paraphrases": "", "tags": "", "language": "en"}
    if content is not None:
        form.update(
            slug=content.slug, question=content.question, answer=content.answer,
            paraphrases="\n".join(content.paraphrases), tags=", ".join(content.tags), language=content.language,
        )  # fmt: skip
    form.update(overrides)
    return form


# ---------------------------------------------------------------- the list


@router.get("/faq")
def entry_list(
    request: Request, viewer: EditorViewer, q: str = "", status: str = "", tag: str = ""
) -> Response:
    editor = _editor(request)
    status = status if status in STATUS_FILTERS else ""
    entries = editor.entries(query=q[:200], status=status or None, tag=tag[:64] or None)
    everything = editor.entries()
    counts = {s: sum(1 for e in everything if e.status == s) for s in STATUS_FILTERS}
    counts["changed"] = sum(1 for e in everything if e.has_unpublished_changes)
    return render(
        request, "editor_list.html", viewer, entries=entries, q=q[:200], status=status, tag=tag[:64],
        tags=sorted({t for e in everything for t in e.content.tags}), counts=counts, total=len(everything),
    )  # fmt: skip


# ---------------------------------------------------------------- writing an entry


@router.get("/faq/new")
def new_entry(
    request: Request,
    viewer: EditorViewer,
    slug: str = "",
    question: str = "",
    answer: str = "",
    tags: str = "",
    paraphrase: Annotated[list[str] | None, Query(max_length=20)] = None,
) -> Response:
    form = _form(
        slug=slug[:100], question=question[:500], answer=answer[:1000], tags=tags[:200],
        paraphrases="\n".join(p[:500] for p in (paraphrase or [])),
    )  # fmt: skip
    return render(request, "editor_entry.html", viewer, entry=None, form=form, problems=[], check=None, preview=None,
                  versions=[], preview_text="")  # fmt: skip


@router.post("/faq/new")
def create_entry(
    request: Request,
    viewer: EditorViewer,
    slug: Annotated[str, Form(max_length=200)] = "",
    question: Annotated[str, Form(max_length=2000)] = "",
    answer: Annotated[str, Form(max_length=4000)] = "",
    paraphrases: Annotated[str, Form(max_length=20000)] = "",
    tags: Annotated[str, Form(max_length=1000)] = "",
    language: Annotated[str, Form(max_length=20)] = "en",
) -> Response:
    content = content_from_form(slug, question, answer, paraphrases, tags, language)
    try:
        entry = _editor(request).create(content, author=viewer.account.username)
    except EditorError as exc:
        form = _form(slug=slug, question=question, answer=answer, paraphrases=paraphrases, tags=tags, language=language)
        return render(
            request, "editor_entry.html", viewer, status_code=422, entry=None, form=form,
            problems=exc.problems or [str(exc)], check=None, preview=None, versions=[], preview_text="",
        )  # fmt: skip
    return _redirect(f"/faq/entries/{entry.slug}", "Draft saved. Preview it, then publish it when it is right.")


def _entry_page(
    request: Request, viewer: Viewer, slug: str, *, form: EntryForm | None = None, problems: list[str] | None = None,
    preview: Preview | None = None, preview_text: str = "", status_code: int = 200,
) -> Response:  # fmt: skip
    editor = _editor(request)
    entry = editor.entry(slug)
    form = form or _form(entry.content)
    check = None
    if form is not None and form.get("question"):
        try:
            check = editor.check(content_from_form(**form))
        except EditorError:
            check = None
    return render(
        request, "editor_entry.html", viewer, status_code=status_code, entry=entry, form=form,
        problems=problems or [], check=check, preview=preview, preview_text=preview_text,
        versions=list(reversed(editor.history(slug))), proposed=len(proposals_of(request).proposals(slug)),
    )  # fmt: skip


@router.get("/faq/entries/{slug}")
def entry_page(request: Request, viewer: EditorViewer, slug: str) -> Response:
    return _entry_page(request, viewer, slug)


@router.post("/faq/entries/{slug}")
def save_entry(
    request: Request,
    viewer: EditorViewer,
    slug: str,
    question: Annotated[str, Form(max_length=2000)] = "",
    answer: Annotated[str, Form(max_length=4000)] = "",
    paraphrases: Annotated[str, Form(max_length=20000)] = "",
    tags: Annotated[str, Form(max_length=1000)] = "",
    language: Annotated[str, Form(max_length=20)] = "en",
) -> Response:
    content = content_from_form(slug, question, answer, paraphrases, tags, language)
    try:
        _editor(request).save(slug, content, author=viewer.account.username)
    except NotFound:
        raise
    except EditorError as exc:
        form = _form(slug=slug, question=question, answer=answer, paraphrases=paraphrases, tags=tags, language=language)
        return _entry_page(request, viewer, slug, form=form, problems=exc.problems or [str(exc)], status_code=422)
    return _redirect(f"/faq/entries/{slug}", "Saved. The live version is unchanged until you publish.")


def _change(request: Request, slug: str, action: str, done: str, **arguments: Any) -> Response:
    editor = _editor(request)
    try:
        getattr(editor, action)(slug, **arguments)
    except NotFound:
        raise
    except EditorError as exc:
        return _redirect(f"/faq/entries/{slug}", str(exc), "error")
    return _redirect(f"/faq/entries/{slug}", done)


@router.post("/faq/entries/{slug}/publish")
def publish(request: Request, viewer: EditorViewer, slug: str) -> Response:
    return _change(request, slug, "publish", "Published. The bot answers with it from now on.",
                   author=viewer.account.username)  # fmt: skip


@router.post("/faq/entries/{slug}/unpublish")
def unpublish(request: Request, viewer: EditorViewer, slug: str) -> Response:
    return _change(request, slug, "unpublish", "Unpublished. The bot no longer answers with it; its history stays.",
                   author=viewer.account.username)  # fmt: skip


@router.post("/faq/entries/{slug}/rollback")
def rollback(request: Request, viewer: EditorViewer, slug: str, version: FormId) -> Response:
    return _change(request, slug, "rollback", f"Version {version} is live again, published as a new version.",
                   version=version, author=viewer.account.username)  # fmt: skip


@router.post("/faq/entries/{slug}/preview")
def preview_entry(
    request: Request, viewer: EditorViewer, slug: str, text: Annotated[str, Form(max_length=MAX_TWEET_CHARS)] = ""
) -> Response:
    try:
        result = _editor(request).preview(text, draft=slug)
    except NotFound:
        raise
    except EditorError as exc:
        return _entry_page(request, viewer, slug, problems=[str(exc)], preview_text=text, status_code=422)
    return _entry_page(request, viewer, slug, preview=result, preview_text=text)


@router.get("/faq/entries/{slug}/history")
def history(request: Request, viewer: EditorViewer, slug: str, old: int | None = None, new: str = "") -> Response:
    """The versions of an entry and a diff between any two of them (`new=working`: the working copy)."""
    editor = _editor(request)
    entry = editor.entry(slug)
    versions = editor.history(slug)
    numbers = [v.version for v in versions]
    diff = None
    new_version: int | None = None
    if numbers:
        if new == "working" or (not new and entry.has_unpublished_changes):
            new_version = None
        elif new.isdigit() and int(new) in numbers:
            new_version = int(new)
        else:
            new_version = numbers[-1]
        if old not in numbers:
            old = numbers[-1] if new_version is None else max([n for n in numbers if n < new_version] or [new_version])
        diff = editor.diff(slug, old, new_version)
    return render(request, "editor_history.html", viewer, entry=entry, versions=list(reversed(versions)), diff=diff,
                  old=old, new=new_version)  # fmt: skip


class EntryCheckIn(BaseModel):
    slug: str = Field(default="", max_length=200)
    question: str = Field(default="", max_length=2000)
    answer: str = Field(default="", max_length=4000)
    paraphrases: str = Field(default="", max_length=20000)
    tags: str = Field(default="", max_length=1000)
    language: str = Field(default="en", max_length=20)


@router.post("/faq/check")
def check_entry(request: Request, viewer: EditorViewer, payload: EntryCheckIn) -> dict[str, Any]:
    """The live checks of an entry being written (JSON for the editor's page)."""
    content = content_from_form(**payload.model_dump())
    return _editor(request).check(content).to_dict()


# ---------------------------------------------------------------- what would the bot do


@router.get("/faq/preview")
def preview_page(request: Request, viewer: EditorViewer) -> Response:
    return render(request, "editor_preview.html", viewer, preview=None, text="", error=None)


@router.post("/faq/preview")
def preview(
    request: Request, viewer: EditorViewer, text: Annotated[str, Form(max_length=MAX_TWEET_CHARS)] = ""
) -> Response:
    try:
        result = _editor(request).preview(text)
    except EditorError as exc:
        return render(request, "editor_preview.html", viewer, status_code=422, preview=None, text=text, error=str(exc))
    return render(request, "editor_preview.html", viewer, preview=result, text=text, error=None)


# ---------------------------------------------------------------- learning from people's answers


@router.get("/unanswered")
def unanswered(request: Request, viewer: EditorViewer) -> Response:
    finder = _services(request)[1]
    groups = finder.groups()
    return render(
        request, "editor_unanswered.html", viewer, groups=groups[:SHOWN_GROUPS], total=sum(g.size for g in groups),
        hidden=len(groups[SHOWN_GROUPS:]), group_count=len(groups), score_limit=finder.score_limit, days=finder.days,
    )  # fmt: skip


@router.get("/faq/proposals")
def proposals_page(request: Request, viewer: EditorViewer, entry: str = "") -> Response:
    """Customers' tweets that agents' approved drafts answered, proposed as paraphrases of their entries."""
    proposals = proposals_of(request).proposals(entry[:100] or None)
    return render(request, "editor_proposals.html", viewer, proposals=proposals, entry=entry[:100],
                  near_duplicate=NEAR_DUPLICATE)  # fmt: skip


def _back(entry: str) -> str:
    return "/faq/proposals" + (f"?entry={quote(entry)}" if entry else "")


@router.post("/faq/proposals/{slug}/add")
def add_proposal(
    request: Request, viewer: EditorViewer, slug: str, key: Annotated[str, Form(max_length=64)] = "",
    back: Annotated[str, Form(max_length=100)] = "",
) -> Response:  # fmt: skip
    try:
        proposals_of(request).add(slug, key, author=viewer.account.username)
    except NotFound:
        raise
    except EditorError as exc:
        return _redirect(_back(back), str(exc), "error")
    return _redirect(f"/faq/entries/{slug}", "Paraphrase added to the draft. The live version is unchanged until "
                     "you publish.")  # fmt: skip


@router.post("/faq/proposals/{slug}/dismiss")
def dismiss_proposal(
    request: Request, viewer: EditorViewer, slug: str, key: Annotated[str, Form(max_length=64)] = "",
    back: Annotated[str, Form(max_length=100)] = "",
) -> Response:  # fmt: skip
    try:
        proposals_of(request).dismiss(slug, key, author=viewer.account.username)
    except NotFound:
        raise
    except EditorError as exc:
        return _redirect(_back(back), str(exc), "error")
    return _redirect(_back(back), "Dismissed. It will not be proposed again.")


@router.get("/faq/training-examples.yml")
def training_examples(request: Request, viewer: EditorViewer) -> Response:
    examples = _services(request)[1].training_examples()
    now = datetime.now(UTC)
    return Response(
        nlu_yaml(examples, generated_at=now), media_type="application/yaml; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="carebot-nlu-{now:%Y%m%d-%H%M}.yml"'},
    )  # fmt: skip
