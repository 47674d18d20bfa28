"""The FAQ editor's JSON API under /api/faq and /api/unanswered: the editor pages' actions for scripts and
integrations (editors and leads, as the pages). A thin layer over the services the pages call (bot/web/editor.py,
bot/web/unanswered.py): listing, reading, creating and editing entries, publish, unpublish, rollback, history and
diffs, the live check and the preview of what the bot would reply, the unanswered questions' groups with
"start a draft from this group", and the paraphrases proposed from agents' approved drafts (bot/web/proposals.py)
with "add to the entry's draft" and "dismiss".

Editing is optimistic: every entry carries a `revision` (a fingerprint of its working copy, state and versions);
an edit or publish that names a revision the entry no longer has is refused with 409 and the current revision,
so an editor never overwrites, or publishes, a change they have not seen. Errors are the API's error JSON; an
entry that breaks the rules is 422 with every rule it breaks in `problems`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from bot.db import as_utc
from bot.web.access import EditorViewer
from bot.web.api import ERROR_RESPONSES, Problem, ProblemRoute
from bot.web.editor import MAX_TWEET_CHARS, EditorError, EditorService, NotFound, Preview
from bot.web.editor_pages import STATUS_FILTERS, proposals_of
from bot.web.limits import MAX_ID
from bot.web.unanswered import QuestionGroup, UnansweredQuestions
from knowledge_base.errors import VersionNotFound
from knowledge_base.service import Entry, EntryContent, EntryVersion, render_content

router = APIRouter(prefix="/api", tags=["FAQ editor"], route_class=ProblemRoute, responses=ERROR_RESPONSES)

Slug = Annotated[str, Path(min_length=1, max_length=100, description="The entry's slug, e.g. reset-hub")]
TweetId = Annotated[str, Path(pattern=r"^[0-9]{1,20}$", description="The id of the group's first (centre) tweet")]
Paraphrases = Annotated[list[Annotated[str, Field(max_length=2000)]], Field(max_length=100)]
Tags = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=50)]


def _editor(request: Request) -> EditorService:
    editor: EditorService = request.app.state.editor
    return editor


def _unanswered(request: Request) -> UnansweredQuestions:
    finder: UnansweredQuestions = request.app.state.unanswered
    return finder


# ---------------------------------------------------------------- what goes in and out


class EntryIn(BaseModel):
    """A new entry (a draft until it is published)."""

    slug: str = Field(max_length=200, description="Lower-case letters, digits and single hyphens (at most 100)")
    question: str = Field(max_length=2000)
    answer: str = Field(max_length=4000, description="The reply's body; the bot's signature is added when sent")
    paraphrases: Paraphrases = []
    tags: Tags = []
    language: str = Field(default="en", max_length=20)

    def content(self) -> EntryContent:
        return EntryContent(
            slug=self.slug, question=self.question, answer=self.answer, paraphrases=tuple(self.paraphrases),
            tags=tuple(self.tags), language=self.language,
        ).cleaned()  # fmt: skip


class EntryEdit(BaseModel):
    """A change to an entry's working copy: the fields given replace the working copy's; those left out (or null)
    stay as they are."""

    revision: str = Field(min_length=1, max_length=64, description="The revision you read (GET the entry)")
    question: str | None = Field(default=None, max_length=2000)
    answer: str | None = Field(default=None, max_length=4000)
    paraphrases: Paraphrases | None = None
    tags: Tags | None = None
    language: str | None = Field(default=None, max_length=20)


class RevisionIn(BaseModel):
    revision: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="If given, refused with 409 unless the entry is still at this revision",
    )  # fmt: skip


class RollbackIn(BaseModel):
    version: int = Field(ge=1, le=MAX_ID, description="The published version to make live again")
    revision: str | None = Field(default=None, min_length=1, max_length=64)


class TweetIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TWEET_CHARS, description="A customer's tweet")


class CheckIn(BaseModel):
    slug: str = Field(default="", max_length=200)
    question: str = Field(default="", max_length=2000)
    answer: str = Field(default="", max_length=4000)
    paraphrases: Paraphrases = []
    tags: Tags = []
    language: str = Field(default="en", max_length=20)


class ProposalIn(BaseModel):
    key: str = Field(min_length=1, max_length=64, description="The proposal's key (GET /api/faq/proposals)")


class DraftFromGroupIn(BaseModel):
    """What to change in the group's suggested draft before it is saved (the rest is taken as suggested)."""

    slug: str | None = Field(default=None, max_length=200)
    question: str | None = Field(default=None, max_length=2000)
    answer: str | None = Field(default=None, max_length=4000)
    tags: Tags = []


def revision(entry: Entry) -> str:
    """A fingerprint of everything an edit or publish would change: the working copy, state and versions."""
    parts = [str(entry.id), entry.status, str(entry.version), str(entry.published_version),
             entry.updated_at.isoformat(), *render_content(entry.content)]  # fmt: skip
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _iso(value: Any) -> str | None:
    moment = as_utc(value)
    return moment.isoformat() if moment is not None else None


def _content(content: EntryContent) -> dict[str, Any]:
    return {
        "question": content.question, "answer": content.answer, "paraphrases": list(content.paraphrases),
        "tags": list(content.tags), "language": content.language,
    }  # fmt: skip


def _entry(entry: Entry) -> dict[str, Any]:
    return {
        "slug": entry.slug, "id": entry.id, "status": entry.status, "revision": revision(entry),
        "version": entry.version, "published_version": entry.published_version,
        "live": entry.status == "published", "has_unpublished_changes": entry.has_unpublished_changes,
        "author": entry.author, "created_at": _iso(entry.created_at), "updated_at": _iso(entry.updated_at),
        "working_copy": _content(entry.content),
    }  # fmt: skip


def _version(version: EntryVersion, entry: Entry) -> dict[str, Any]:
    return {
        "version": version.version, "author": version.author, "note": version.note,
        "created_at": _iso(version.created_at),
        "live": entry.status == "published" and entry.published_version == version.version,
        "content": _content(version.content),
    }  # fmt: skip


def _preview(preview: Preview) -> dict[str, Any]:
    data = asdict(preview)
    data["answers_with_draft"] = preview.answers_with_draft
    return data


def _group(group: QuestionGroup) -> dict[str, Any]:
    nearest = group.nearest
    return {
        "key": group.tweets[0].tweet_id if group.tweets else None, "size": group.size,
        "question": group.question, "paraphrases": group.paraphrases, "answer": group.answer, "slug": group.slug,
        "draft_link": group.draft_link, "nearest": {"slug": nearest[0], "score": nearest[1]} if nearest else None,
        "tweets": [
            {"tweet_id": t.tweet_id, "text": t.text, "author": t.author, "ticket_id": t.ticket_id, "band": t.band,
             "created_at": _iso(t.created_at), "top_score": t.top_score,
             "top_slug": t.top_slug}
            for t in group.tweets
        ],
        "replies": [asdict(reply) for reply in group.replies],
    }  # fmt: skip


def _refused(exc: EditorError, *, otherwise: int = 409) -> Problem:
    """The editor service's refusal as the API answers it: unknown entry or version 404, an entry breaking the
    rules 422 (with every rule), a change the entry's state does not allow 409 (`otherwise`)."""
    if isinstance(exc, NotFound) or isinstance(exc.__cause__, VersionNotFound):
        return Problem(404, "Not found", str(exc))
    if exc.problems:
        return Problem(422, "Invalid input", str(exc), problems=[{"field": "", "message": p} for p in exc.problems])
    return Problem(otherwise, "Invalid input" if otherwise == 422 else "Not done", str(exc))


def _run(action: Any, *, otherwise: int = 409) -> Any:
    try:
        return action()
    except EditorError as exc:
        raise _refused(exc, otherwise=otherwise) from exc


def _current(editor: EditorService, slug: str, expected: str | None) -> Entry:
    """The entry, refused with 409 when `expected` names a revision it no longer has."""
    entry: Entry = _run(lambda: editor.entry(slug))
    if expected is not None and expected != revision(entry):
        raise Problem(
            409, "Changed since you read it",
            f"The entry {slug!r} was changed (revision {revision(entry)}, by {entry.author}) after the revision "
            f"{expected} you sent. Read it again, then repeat your change.",
            revision=revision(entry), entry=_entry(entry),
        )  # fmt: skip
    return entry


# ---------------------------------------------------------------- entries


@router.get("/faq/entries", summary="FAQ entries with their states, filtered by words, state and tag")
def list_entries(
    request: Request, viewer: EditorViewer, q: Annotated[str, Query(max_length=200)] = "",
    status: Literal["", "draft", "published", "archived"] = "", tag: Annotated[str, Query(max_length=64)] = "",
) -> dict[str, Any]:  # fmt: skip
    """`q`: words that must all appear in the slug, question, paraphrases, answer or tags; `status`: draft,
    published or archived; `tag`: one tag. `counts` and `tags` are over every entry, as on the page."""
    editor = _editor(request)
    found = _run(lambda: editor.entries(query=q, status=status or None, tag=tag or None))
    everything = _run(editor.entries)
    counts = {s: sum(1 for e in everything if e.status == s) for s in STATUS_FILTERS}
    counts["changed"] = sum(1 for e in everything if e.has_unpublished_changes)
    return {
        "entries": [_entry(e) for e in found], "total": len(everything), "counts": counts,
        "tags": sorted({t for e in everything for t in e.content.tags}),
    }  # fmt: skip


@router.post("/faq/entries", summary="Create an entry as a draft (not used by the bot until published)",
             status_code=201)  # fmt: skip
def create_entry(request: Request, viewer: EditorViewer, payload: EntryIn) -> dict[str, Any]:
    entry = _run(lambda: _editor(request).create(payload.content(), author=viewer.account.username))
    return _entry(entry)


@router.get("/faq/entries/{slug}", summary="One entry: its working copy, state, versions and revision")
def get_entry(request: Request, viewer: EditorViewer, slug: Slug) -> dict[str, Any]:
    return _entry(_current(_editor(request), slug, None))


@router.post("/faq/entries/{slug}", summary="Edit an entry's working copy (the live version stays until publish)")
def edit_entry(request: Request, viewer: EditorViewer, slug: Slug, payload: EntryEdit) -> dict[str, Any]:
    """Send the `revision` you read: a change made by someone else since then is refused (409) with the current
    revision and entry, so nothing is overwritten unseen."""
    editor = _editor(request)
    current = _current(editor, slug, payload.revision).content
    given = {name: value for name, value in payload.model_dump(exclude={"revision"}).items() if value is not None}
    content = EntryContent(
        slug=slug, question=given.get("question", current.question), answer=given.get("answer", current.answer),
        paraphrases=tuple(given.get("paraphrases", current.paraphrases)), tags=tuple(given.get("tags", current.tags)),
        language=given.get("language", current.language),
    )  # fmt: skip
    return _entry(_run(lambda: editor.save(slug, content, author=viewer.account.username)))


@router.post("/faq/entries/{slug}/publish", summary="Publish the working copy as the next live version")
def publish(request: Request, viewer: EditorViewer, slug: Slug, payload: RevisionIn | None = None) -> dict[str, Any]:
    """With a `revision`, only the working copy you read is published (409 when it changed since)."""
    editor = _editor(request)
    _current(editor, slug, payload.revision if payload else None)
    return _entry(_run(lambda: editor.publish(slug, author=viewer.account.username)))


@router.post("/faq/entries/{slug}/unpublish", summary="Take an entry out of the bot's answers (archived; history kept)")
def unpublish(
    request: Request, viewer: EditorViewer, slug: Slug, payload: RevisionIn | None = None
) -> dict[str, Any]:  # fmt: skip
    editor = _editor(request)
    _current(editor, slug, payload.revision if payload else None)
    return _entry(_run(lambda: editor.unpublish(slug, author=viewer.account.username)))


@router.post("/faq/entries/{slug}/rollback", summary="Make an earlier version live again, as a new version")
def rollback(request: Request, viewer: EditorViewer, slug: Slug, payload: RollbackIn) -> dict[str, Any]:
    editor = _editor(request)
    _current(editor, slug, payload.revision)
    return _entry(_run(lambda: editor.rollback(slug, payload.version, author=viewer.account.username)))


@router.get("/faq/entries/{slug}/history", summary="Every published version of an entry, oldest first")
def history(request: Request, viewer: EditorViewer, slug: Slug) -> dict[str, Any]:
    editor = _editor(request)
    entry = _current(editor, slug, None)
    return {"slug": slug, "versions": [_version(v, entry) for v in _run(lambda: editor.history(slug))]}


@router.get("/faq/entries/{slug}/diff", summary="A line diff between two versions, or a version and the working copy")
def diff(
    request: Request, viewer: EditorViewer, slug: Slug, old: Annotated[int, Query(ge=1, le=MAX_ID)],
    new: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Omitted: the working copy")] = None,
) -> dict[str, Any]:  # fmt: skip
    lines = _run(lambda: _editor(request).diff(slug, old, new))
    return {"slug": slug, "old": old, "new": new, "lines": [asdict(line) for line in lines]}


@router.post("/faq/entries/{slug}/preview", summary="What the bot would reply, this entry's working copy live")
def preview_entry(request: Request, viewer: EditorViewer, slug: Slug, payload: TweetIn) -> dict[str, Any]:
    """The band, reasons, the exact reply and its tone findings, with the entry's saved working copy standing in
    for its live version (a draft never published competes as a new entry)."""
    return _preview(_run(lambda: _editor(request).preview(payload.text, draft=slug), otherwise=422))


@router.post("/faq/preview", summary="What the bot would do with a tweet against the published FAQ")
def preview(request: Request, viewer: EditorViewer, payload: TweetIn) -> dict[str, Any]:
    return _preview(_run(lambda: _editor(request).preview(payload.text), otherwise=422))


@router.post("/faq/check", summary="Check an entry being written: rules, length, reply, tone, near-duplicates")
def check(request: Request, viewer: EditorViewer, payload: CheckIn) -> dict[str, Any]:
    content = EntryContent(
        slug=payload.slug, question=payload.question, answer=payload.answer, paraphrases=tuple(payload.paraphrases),
        tags=tuple(payload.tags), language=payload.language,
    )  # fmt: skip
    result: dict[str, Any] = _run(lambda: _editor(request).check(content)).to_dict()
    return result


# ---------------------------------------------------------------- proposed paraphrases


@router.get("/faq/proposals", summary="Paraphrases proposed from customers' tweets that approved drafts answered")
def proposals(
    request: Request, viewer: EditorViewer, entry: Annotated[str, Query(max_length=100)] = ""
) -> dict[str, Any]:  # fmt: skip
    """Per entry (or one, `entry`), most evidence first: each proposal's text, how many approved, edited or sent
    drafts it comes from, an example, and `closer_to` when another live entry is closer to it than its own."""
    found = _run(lambda: proposals_of(request).proposals(entry or None))
    return {"proposals": [p.to_dict() for p in found]}


@router.post("/faq/proposals/{slug}/add", summary="Add a proposed paraphrase to the entry's working copy (not live)")
def add_proposal(request: Request, viewer: EditorViewer, slug: Slug, payload: ProposalIn) -> dict[str, Any]:
    """The paraphrase joins the entry's working copy; the bot uses it once the entry is published. 404 when the
    proposal is no longer proposed (added or dismissed)."""
    found = proposals_of(request)
    return _entry(_run(lambda: found.add(slug, payload.key, author=viewer.account.username), otherwise=404))


@router.post("/faq/proposals/{slug}/dismiss", summary="Dismiss a proposed paraphrase (it is not proposed again)")
def dismiss_proposal(request: Request, viewer: EditorViewer, slug: Slug, payload: ProposalIn) -> dict[str, Any]:
    found = proposals_of(request)
    return {"dismissed": _run(lambda: found.dismiss(slug, payload.key, author=viewer.account.username),
                              otherwise=404).to_dict()}  # fmt: skip


# ---------------------------------------------------------------- unanswered questions


@router.get("/unanswered", summary="Questions the bot could not answer, grouped by meaning, largest group first")
def unanswered(
    request: Request, viewer: EditorViewer, limit: Annotated[int, Query(ge=1, le=500)] = 60
) -> dict[str, Any]:  # fmt: skip
    """Personal data is replaced by placeholders. Each group's `key` (its centre tweet) starts a draft with
    POST /api/unanswered/{key}/draft; `draft_link` is the page's prefilled new-entry form."""
    finder = _unanswered(request)
    groups = finder.groups()
    return {
        "groups": [_group(g) for g in groups[:limit]], "group_count": len(groups), "total": sum(g.size for g in groups),
        "days": finder.days, "score_limit": finder.score_limit,
    }  # fmt: skip


@router.post("/unanswered/{key}/draft", summary="Start a draft entry from a group of unanswered questions",
             status_code=201)  # fmt: skip
def draft_from_group(
    request: Request, viewer: EditorViewer, key: TweetId, payload: DraftFromGroupIn | None = None
) -> dict[str, Any]:  # fmt: skip
    """The group's suggested draft, exactly as the page's "Start a draft" fills in the form (its question, other
    tweets as paraphrases, an agent's reply as the answer), with the fields you give instead. The draft is not
    used by the bot until it is published."""
    group = next((g for g in _unanswered(request).groups() if g.tweets and g.tweets[0].tweet_id == key), None)
    if group is None:
        raise Problem(404, "Not found", "No group of unanswered questions starts with that tweet now; list them again.")
    suggested = parse_qs(urlsplit(group.draft_link).query)
    changes = payload or DraftFromGroupIn()
    content = EntryContent(
        slug=changes.slug if changes.slug is not None else suggested.get("slug", [""])[0],
        question=changes.question if changes.question is not None else suggested.get("question", [""])[0],
        answer=changes.answer if changes.answer is not None else suggested.get("answer", [""])[0],
        paraphrases=tuple(suggested.get("paraphrase", [])), tags=tuple(changes.tags),
    ).cleaned()  # fmt: skip
    return _entry(_run(lambda: _editor(request).create(content, author=viewer.account.username)))


@router.get("/faq/training-examples", summary="Agents' resolutions as NLU training examples (no personal data)")
def training_examples(request: Request, viewer: EditorViewer) -> dict[str, Any]:
    """The same examples as /faq/training-examples.yml, as JSON."""
    return {"examples": [asdict(e) for e in _unanswered(request).training_examples()]}
