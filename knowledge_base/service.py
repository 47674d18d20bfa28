"""The editor service: every change to the FAQ goes through here (the CLI and the web editor alike).

Each use case runs in its own unit of work (a Session that commits at the end or rolls back on any error).
An entry's working copy is edited freely; publishing validates it, snapshots it as a new immutable version,
stores the embeddings of its question and paraphrases, and bumps the KB version so that every search index
catches up. A rollback publishes an old version's content anew, as the next version.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import regex
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from knowledge_base.characters import field_problem
from knowledge_base.embedding import Embedder
from knowledge_base.errors import (
    EntryNotFound,
    InvalidTransition,
    KbImportError,
    KbValidationError,
    VersionNotFound,
)
from knowledge_base.index import embedding_from_bytes, embedding_to_bytes
from knowledge_base.models import STATUSES, changes, entries, entry_versions, kb_state, vectors
from knowledge_base.tweet_length import MAX_WEIGHTED_LENGTH, weighted_length

SessionFactory = Callable[[], Session]
ProgressCallback = Callable[[int, int], None]

_SLUG = regex.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_LANGUAGE = regex.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_EMBED_CHUNK = 256


@dataclass(frozen=True)
class EntryContent:
    """What an editor writes: the part of an entry that is versioned."""

    slug: str
    question: str
    answer: str
    paraphrases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    language: str = "en"

    def cleaned(self) -> EntryContent:
        """Surrounding white space removed everywhere; empty paraphrases and tags dropped; the answer's line breaks
        are newlines (a browser's form sends CR LF)."""
        return EntryContent(
            slug=self.slug.strip(),
            question=self.question.strip(),
            answer=self.answer.replace("\r\n", "\n").strip(),
            paraphrases=tuple(p.strip() for p in self.paraphrases if p.strip()),
            tags=tuple(t.strip() for t in self.tags if t.strip()),
            language=self.language.strip(),
        )

    @property
    def texts(self) -> list[str]:
        """The texts that are embedded and searched: the question, then the paraphrases."""
        return [self.question, *self.paraphrases]


@dataclass(frozen=True)
class EntryRecord:
    """One entry in an import or export file."""

    content: EntryContent
    status: str = "published"
    line: int = field(default=0, compare=False)  # where it starts in the file, for error messages


@dataclass(frozen=True)
class Entry:
    id: int
    content: EntryContent
    status: str
    version: int  # the latest version's number; 0 when never published
    published_version: int | None
    has_unpublished_changes: bool
    author: str
    created_at: datetime
    updated_at: datetime

    @property
    def slug(self) -> str:
        return self.content.slug


@dataclass(frozen=True)
class EntryVersion:
    entry_id: int
    version: int
    content: EntryContent
    author: str
    note: str
    created_at: datetime


@dataclass(frozen=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    published: int = 0
    unpublished: int = 0
    unchanged: int = 0
    kb_version: int | None = None


def _content_from(row: Any) -> EntryContent:
    return EntryContent(
        slug=row.slug, question=row.question, answer=row.answer, paraphrases=tuple(row.paraphrases),
        tags=tuple(row.tags), language=row.language,
    )  # fmt: skip


def _content_columns(content: EntryContent) -> dict[str, Any]:
    return {
        "slug": content.slug, "question": content.question, "answer": content.answer,
        "paraphrases": list(content.paraphrases), "tags": list(content.tags), "language": content.language,
    }  # fmt: skip


def render_content(content: EntryContent) -> list[str]:
    """An entry as readable lines, the form diffs are made of."""
    lines = [f"slug: {content.slug}", f"language: {content.language}", f"tags: {', '.join(content.tags)}"]
    lines += ["question:", f"  {content.question}", "paraphrases:"]
    lines += [f"  - {p}" for p in content.paraphrases]
    lines += ["answer:", *(f"  {line}" for line in content.answer.splitlines())]
    return lines


class KnowledgeBaseService:
    def __init__(
        self,
        session_factory: SessionFactory,
        embedder: Embedder,
        *,
        duplicate_threshold: float = 0.9,
        signature: str = "^bot",
        max_length: int = MAX_WEIGHTED_LENGTH,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._session_factory = session_factory
        self.embedder = embedder
        self.duplicate_threshold = duplicate_threshold
        self.signature = signature
        self.max_length = max_length
        self._clock = clock

    @contextmanager
    def _unit_of_work(self) -> Iterator[Session]:
        session = self._session_factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # ---------------------------------------------------------------- validation
    def static_problems(self, content: EntryContent) -> list[str]:
        """Every rule the content breaks that needs no embedding. No field may hold control characters or invisible
        formatting (knowledge_base/characters.py), so imports, the editor's form and its API all refuse them."""
        problems = []
        if not _SLUG.fullmatch(content.slug) or len(content.slug) > 100:
            problems.append(
                f"the slug {content.slug!r} must be lower-case letters, digits and single hyphens (at most 100)"
            )
        if not content.question:
            problems.append("the question is empty")
        if not content.answer:
            problems.append("the answer is empty")
        else:
            signed = f"{content.answer} {self.signature}" if self.signature else content.answer
            length = weighted_length(signed)
            if length > self.max_length:
                problems.append(
                    f"the answer with the signature {self.signature!r} is {length} characters as X counts them; "
                    f"a tweet holds {self.max_length} ({length - self.max_length} too many)"
                )
        seen: set[str] = set()
        for number, paraphrase in enumerate(content.paraphrases, start=1):
            key = paraphrase.casefold()
            if key in seen or key == content.question.casefold():
                problems.append(f"paraphrase {number} repeats {paraphrase!r}")
            seen.add(key)
        if not _LANGUAGE.fullmatch(content.language):
            problems.append(f"the language {content.language!r} is not a language code like 'en' or 'de'")
        fields = [("the question", content.question, False), ("the answer", content.answer, True)]
        fields += [(f"paraphrase {n}", text, False) for n, text in enumerate(content.paraphrases, start=1)]
        fields += [(f"tag {n}", text, False) for n, text in enumerate(content.tags, start=1)]
        for name, text, multiline in fields:
            problem = field_problem(name, text, multiline=multiline)
            if problem:
                problems.append(problem)
        return problems

    def check(self, content: EntryContent) -> list[str]:
        """Every rule the content breaks if it were published now, including duplicates (for live feedback)."""
        content = content.cleaned()
        problems = self.static_problems(content)
        if content.question:
            with self._unit_of_work() as session:
                others = self._live_matrix(session, exclude_slugs={content.slug})
            problems += self._duplicate_problems(self.embedder.embed([content.question])[0], others)
        return problems

    def _live_matrix(self, session: Session, exclude_slugs: set[str]) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """The live vectors of every published entry except the excluded ones, with (slug, text) per row."""
        query = (
            select(entries.c.slug, vectors.c.text, vectors.c.embedding)
            .join(entries, entries.c.id == vectors.c.entry_id)
            .where(vectors.c.model == self.embedder.name)
        )
        if exclude_slugs:
            query = query.where(entries.c.slug.not_in(exclude_slugs))
        rows = session.execute(query).all()
        if not rows:
            return np.zeros((0, 0), dtype=np.float32), []
        return np.stack([embedding_from_bytes(row.embedding) for row in rows]), [(r.slug, r.text) for r in rows]

    def _duplicate_problems(self, question: np.ndarray, others: tuple[np.ndarray, list[tuple[str, str]]]) -> list[str]:
        matrix, labels = others
        if not labels:
            return []
        scores = matrix @ question
        best = int(np.argmax(scores))
        if scores[best] < self.duplicate_threshold:
            return []
        slug, text = labels[best]
        return [
            f"the question duplicates the published entry {slug!r} (matches {text!r} with similarity "
            f"{scores[best]:.2f}, the limit is {self.duplicate_threshold:.2f})"
        ]

    # ---------------------------------------------------------------- reading
    def _row(self, session: Session, slug: str, *, lock: bool = False) -> Any:
        """The entry's row; `lock` holds it until commit, so two editors publishing it take turns
        (PostgreSQL; SQLite has one writer at a time anyway)."""
        query = select(entries).where(entries.c.slug == slug)
        row = session.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise EntryNotFound(f"no FAQ entry with the slug {slug!r}")
        return row

    def _live_content(self, session: Session, row: Any) -> EntryContent | None:
        if row.published_version is None:
            return None
        return self._version_row(session, row, row.published_version)[1]

    def _version_row(self, session: Session, row: Any, version: int) -> tuple[Any, EntryContent]:
        found = session.execute(
            select(entry_versions).where(entry_versions.c.entry_id == row.id, entry_versions.c.version == version)
        ).first()
        if found is None:
            raise VersionNotFound(f"the FAQ entry {row.slug!r} has no version {version} (it has 1–{row.version})")
        return found, _content_from(found)

    def _entry(self, session: Session, row: Any) -> Entry:
        content = _content_from(row)
        live = self._live_content(session, row)
        return Entry(
            id=row.id, content=content, status=row.status, version=row.version,
            published_version=row.published_version, has_unpublished_changes=live is not None and live != content,
            author=row.author, created_at=row.created_at, updated_at=row.updated_at,
        )  # fmt: skip

    def get(self, slug: str) -> Entry:
        with self._unit_of_work() as session:
            return self._entry(session, self._row(session, slug))

    def list_entries(self, *, status: str | None = None, tag: str | None = None) -> list[Entry]:
        """Entries in creation order, optionally only those with a status or a tag."""
        if status is not None and status not in STATUSES:
            raise InvalidTransition(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        with self._unit_of_work() as session:
            query = select(entries).order_by(entries.c.id)
            if status is not None:
                query = query.where(entries.c.status == status)
            found = [self._entry(session, row) for row in session.execute(query)]
        return [e for e in found if tag is None or tag in e.content.tags]

    def history(self, slug: str) -> list[EntryVersion]:
        """Every published version of an entry, oldest first."""
        with self._unit_of_work() as session:
            row = self._row(session, slug)
            rows = session.execute(
                select(entry_versions).where(entry_versions.c.entry_id == row.id).order_by(entry_versions.c.version)
            )
            return [
                EntryVersion(r.entry_id, r.version, _content_from(r), r.author, r.note, r.created_at) for r in rows
            ]

    def get_version(self, slug: str, version: int) -> EntryVersion:
        with self._unit_of_work() as session:
            found, content = self._version_row(session, self._row(session, slug), version)
            return EntryVersion(found.entry_id, found.version, content, found.author, found.note, found.created_at)

    def published(self, entry_ids: Sequence[int]) -> dict[int, EntryVersion]:
        """The live version of each of these entries that is published (what the bot may answer with)."""
        with self._unit_of_work() as session:
            rows = session.execute(
                select(entry_versions)
                .join(entries, entries.c.id == entry_versions.c.entry_id)
                .where(entries.c.id.in_(list(entry_ids)), entry_versions.c.version == entries.c.published_version)
            )
            return {
                r.entry_id: EntryVersion(r.entry_id, r.version, _content_from(r), r.author, r.note, r.created_at)
                for r in rows
            }

    def diff(self, slug: str, old: int, new: int | None = None) -> str:
        """A unified diff between two versions; `new=None` compares with the working copy."""
        with self._unit_of_work() as session:
            row = self._row(session, slug)
            before = self._version_row(session, row, old)[1]
            after = _content_from(row) if new is None else self._version_row(session, row, new)[1]
        label = "working copy" if new is None else f"version {new}"
        lines = difflib.unified_diff(
            render_content(before), render_content(after), f"{slug} version {old}", f"{slug} {label}", lineterm=""
        )
        return "\n".join(lines)

    def kb_version(self) -> int:
        with self._unit_of_work() as session:
            return int(session.execute(select(kb_state.c.version)).scalar_one())

    # ---------------------------------------------------------------- editing
    def create_draft(self, content: EntryContent, *, author: str) -> Entry:
        content = content.cleaned()
        with self._unit_of_work() as session:
            problems = self.static_problems(content)
            if session.execute(select(entries.c.id).where(entries.c.slug == content.slug)).first() is not None:
                problems.append(f"an entry with the slug {content.slug!r} exists already")
            if problems:
                raise KbValidationError(f"FAQ entry {content.slug!r}", problems)
            now = self._clock()
            session.execute(
                insert(entries).values(
                    **_content_columns(content), status="draft", version=0, published_version=None, author=author,
                    created_at=now, updated_at=now,
                )  # fmt: skip
            )
            return self._entry(session, self._row(session, content.slug))

    def edit(
        self,
        slug: str,
        *,
        author: str,
        question: str | None = None,
        answer: str | None = None,
        paraphrases: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        language: str | None = None,
    ) -> Entry:
        """Change the working copy; what is live stays live until the next publish. The slug never changes."""
        with self._unit_of_work() as session:
            row = self._row(session, slug, lock=True)
            current = _content_from(row)
            changed = replace(
                current,
                question=current.question if question is None else question,
                answer=current.answer if answer is None else answer,
                paraphrases=current.paraphrases if paraphrases is None else tuple(paraphrases),
                tags=current.tags if tags is None else tuple(tags),
                language=current.language if language is None else language,
            ).cleaned()
            problems = self.static_problems(changed)
            if problems:
                raise KbValidationError(f"FAQ entry {slug!r}", problems)
            session.execute(
                update(entries)
                .where(entries.c.id == row.id)
                .values(**_content_columns(changed), author=author, updated_at=self._clock())
            )
            return self._entry(session, self._row(session, slug))

    def publish(self, slug: str, *, author: str) -> Entry:
        """Validate the working copy and make it live as the next version."""
        with self._unit_of_work() as session:
            row = self._row(session, slug, lock=True)
            content = _content_from(row)
            if row.status == "published" and self._live_content(session, row) == content:
                raise InvalidTransition(
                    f"{slug!r} version {row.published_version} is live and has no unpublished changes"
                )
            embeddings = self._validated_embeddings(session, row, content, f"cannot publish {slug!r}")
            self._publish(session, row, content, embeddings, author=author, note="published")
            self._bump(session, [row.id], "publish", author)
            return self._entry(session, self._row(session, slug))

    def rollback(self, slug: str, version: int, *, author: str) -> Entry:
        """Publish an old version's content anew, as the next version (the working copy becomes that content)."""
        with self._unit_of_work() as session:
            row = self._row(session, slug, lock=True)
            content = self._version_row(session, row, version)[1]
            if row.status == "published" and row.published_version == version and _content_from(row) == content:
                raise InvalidTransition(f"version {version} of {slug!r} is live already")
            embeddings = self._validated_embeddings(session, row, content, f"cannot roll {slug!r} back")
            self._publish(session, row, content, embeddings, author=author, note=f"rollback to version {version}")
            self._bump(session, [row.id], "rollback", author)
            return self._entry(session, self._row(session, slug))

    def unpublish(self, slug: str, *, author: str) -> Entry:
        """Take an entry out of search; it becomes archived and keeps its history."""
        with self._unit_of_work() as session:
            row = self._row(session, slug, lock=True)
            if row.status != "published":
                raise InvalidTransition(f"{slug!r} is not published (it is {row.status})")
            self._unpublish(session, row, author=author, status="archived")
            self._bump(session, [row.id], "unpublish", author)
            return self._entry(session, self._row(session, slug))

    def _validated_embeddings(self, session: Session, row: Any, content: EntryContent, subject: str) -> np.ndarray:
        problems = self.static_problems(content)
        embeddings = self._embed_reusing(session, {row.id: content})[row.id]
        others = self._live_matrix(session, exclude_slugs={row.slug})
        problems += self._duplicate_problems(embeddings[0], others)
        if problems:
            raise KbValidationError(subject, problems)
        return embeddings

    def _embed_reusing(
        self, session: Session, contents: dict[int, EntryContent], on_progress: ProgressCallback | None = None
    ) -> dict[int, np.ndarray]:
        """Embeddings for every text of these entries (keyed by entry id; negative ids for new entries).

        A text the entry already has a vector for (same model) is not embedded again."""
        known: dict[tuple[int, str], np.ndarray] = {}
        existing = [e for e in contents if e > 0]
        for start in range(0, len(existing), 500):
            for r in session.execute(
                select(vectors.c.entry_id, vectors.c.text, vectors.c.embedding).where(
                    vectors.c.entry_id.in_(existing[start : start + 500]), vectors.c.model == self.embedder.name
                )
            ):
                known[(r.entry_id, r.text)] = embedding_from_bytes(r.embedding)
        missing = sorted({text for e, c in contents.items() for text in c.texts if (e, text) not in known})
        fresh = self._embed_in_chunks(missing, on_progress)
        return {
            e: np.stack([known.get((e, text), fresh.get(text)) for text in c.texts])  # type: ignore[misc]
            for e, c in contents.items()
        }

    def _publish(
        self, session: Session, row: Any, content: EntryContent, embeddings: np.ndarray, *, author: str, note: str
    ) -> None:
        now = self._clock()
        version = row.version + 1
        session.execute(
            insert(entry_versions).values(
                entry_id=row.id, version=version, **_content_columns(content), author=author, note=note, created_at=now
            )
        )
        session.execute(
            update(entries)
            .where(entries.c.id == row.id)
            .values(
                **_content_columns(content), status="published", version=version, published_version=version,
                author=author, updated_at=now,
            )  # fmt: skip
        )
        session.execute(delete(vectors).where(vectors.c.entry_id == row.id))
        session.execute(
            insert(vectors),
            [
                {"entry_id": row.id, "version": version, "position": position, "text": text,
                 "model": self.embedder.name, "embedding": embedding_to_bytes(vector)}
                for position, (text, vector) in enumerate(zip(content.texts, embeddings, strict=True))
            ],
        )  # fmt: skip

    def _unpublish(self, session: Session, row: Any, *, author: str, status: str) -> None:
        session.execute(delete(vectors).where(vectors.c.entry_id == row.id))
        session.execute(
            update(entries)
            .where(entries.c.id == row.id)
            .values(status=status, published_version=None, author=author, updated_at=self._clock())
        )

    def _bump(self, session: Session, entry_ids: Sequence[int | None], action: str, author: str) -> int:
        """Advance the KB version and record which entries changed. The row lock orders concurrent publishers."""
        version = session.execute(
            update(kb_state)
            .where(kb_state.c.id == 1)
            .values(version=kb_state.c.version + 1)
            .returning(kb_state.c.version)
        ).scalar_one()
        now = self._clock()
        session.execute(
            insert(changes),
            [
                {"kb_version": version, "entry_id": e, "action": action, "author": author, "created_at": now}
                for e in entry_ids
            ],
        )
        return int(version)

    # ---------------------------------------------------------------- bulk
    def export_entries(self) -> list[EntryRecord]:
        """Every entry's working copy and status, in creation order."""
        return [EntryRecord(e.content, e.status) for e in self.list_entries()]

    def import_entries(
        self,
        records: Sequence[EntryRecord],
        *,
        author: str,
        source: str = "import",
        check_duplicates: bool = True,
        on_progress: ProgressCallback | None = None,
    ) -> ImportReport:
        """Create or update entries by slug and give each the status its record names, all in one transaction.

        Everything is validated first (each record, slugs unique in the file, duplicate questions against
        the entries that will be live afterwards); any problem raises KbImportError and nothing is written.
        A record whose content and status are already in place changes nothing.
        """
        records = [replace(r, content=r.content.cleaned()) for r in records]
        problems: list[str] = []
        first_line: dict[str, str] = {}
        for number, record in enumerate(records, start=1):
            where = f"line {record.line}" if record.line else f"entry {number}"
            if record.status not in STATUSES:
                problems.append(f"{where}: unknown status {record.status!r} (use {', '.join(STATUSES)})")
            problems += [f"{where}: {p}" for p in self.static_problems(record.content)]
            slug = record.content.slug
            if slug in first_line:
                problems.append(f"{where}: the slug {slug!r} appears twice (first at {first_line[slug]})")
            first_line.setdefault(slug, where)
        if problems:
            raise KbImportError(source, problems)

        with self._unit_of_work() as session:
            existing = {row.slug: row for row in session.execute(select(entries))}
            live = {row.slug: self._live_content(session, row) for row in existing.values()}
            keys = {r.content.slug: existing[r.content.slug].id if r.content.slug in existing else -n
                    for n, r in enumerate(records, start=1)}  # fmt: skip
            to_publish = [r for r in records if _needs_publish(r, existing.get(r.content.slug), live)]
            embedded = self._embed_reusing(session, {keys[r.content.slug]: r.content for r in to_publish}, on_progress)
            if check_duplicates and to_publish:
                problems += self._import_duplicates(session, records, to_publish, embedded, keys)
            if problems:
                raise KbImportError(source, problems)
            return self._write_import(session, records, existing, live, embedded, keys, author)

    def _import_duplicates(
        self, session: Session, records: list[EntryRecord], to_publish: list[EntryRecord],
        embedded: dict[int, np.ndarray], keys: dict[str, int],
    ) -> list[str]:  # fmt: skip
        """Each question to publish against every text that will be live after the import, except its own."""
        untouched, labels = self._live_matrix(session, exclude_slugs={r.content.slug for r in records})
        matrices, owners, texts = [untouched], [slug for slug, _ in labels], [text for _, text in labels]
        for record in to_publish:
            matrices.append(embedded[keys[record.content.slug]])
            owners += [record.content.slug] * len(record.content.texts)
            texts += record.content.texts
        matrix = np.concatenate([m for m in matrices if len(m)])
        owner_array = np.array(owners, dtype=object)
        problems = []
        for record in to_publish:
            others = owner_array != record.content.slug
            subset = (matrix[others], [(o, t) for o, t, keep in zip(owners, texts, others, strict=True) if keep])
            question = embedded[keys[record.content.slug]][0]
            problems += [f"line {record.line}: {p}" if record.line else f"{record.content.slug}: {p}"
                         for p in self._duplicate_problems(question, subset)]  # fmt: skip
        return problems

    def _write_import(
        self, session: Session, records: list[EntryRecord], existing: dict[str, Any],
        live: dict[str, EntryContent | None], embedded: dict[int, np.ndarray], keys: dict[str, int], author: str,
    ) -> ImportReport:  # fmt: skip
        counts = {"created": 0, "updated": 0, "published": 0, "unpublished": 0, "unchanged": 0}
        changed_ids: list[int] = []
        now = self._clock()
        for record in records:
            content, slug = record.content, record.content.slug
            row = existing.get(slug)
            publish = _needs_publish(record, row, live)
            if row is None:
                status = "draft" if record.status == "published" else record.status
                session.execute(
                    insert(entries).values(
                        **_content_columns(content), status=status, version=0, published_version=None,
                        author=author, created_at=now, updated_at=now,
                    )  # fmt: skip
                )
                counts["created"] += 1
            elif _content_from(row) == content and row.status == record.status and not publish:
                counts["unchanged"] += 1
                continue
            else:
                counts["updated"] += 1
                session.execute(
                    update(entries).where(entries.c.id == row.id)
                    .values(**_content_columns(content), author=author, updated_at=now)
                )  # fmt: skip
            row = self._row(session, slug)
            if publish:
                self._publish(session, row, content, embedded[keys[slug]], author=author, note="imported")
                counts["published"] += 1
                changed_ids.append(row.id)
            elif row.status == "published":
                self._unpublish(session, row, author=author, status=record.status)
                counts["unpublished"] += 1
                changed_ids.append(row.id)
            elif row.status != record.status:
                session.execute(update(entries).where(entries.c.id == row.id).values(status=record.status))
        kb_version = self._bump(session, changed_ids, "import", author) if changed_ids else None
        return ImportReport(**counts, kb_version=kb_version)

    def _embed_in_chunks(self, texts: list[str], on_progress: ProgressCallback | None) -> dict[str, np.ndarray]:
        """Each text's embedding, made in batches of _EMBED_CHUNK, reporting (done, total) after each batch."""
        embedded: dict[str, np.ndarray] = {}
        for start in range(0, len(texts), _EMBED_CHUNK):
            chunk = texts[start : start + _EMBED_CHUNK]
            embedded.update(zip(chunk, self.embedder.embed(chunk), strict=True))
            if on_progress:
                on_progress(min(start + _EMBED_CHUNK, len(texts)), len(texts))
        return embedded

    def reindex(self, *, author: str, on_progress: ProgressCallback | None = None) -> int:
        """Embed every live text again with the configured model (after changing the model). Returns the count."""
        with self._unit_of_work() as session:
            rows = session.execute(select(entries).where(entries.c.status == "published")).all()
            contents = {row.id: self._live_content(session, row) for row in rows}
            texts = sorted({t for c in contents.values() if c is not None for t in c.texts})
            fresh = self._embed_in_chunks(texts, on_progress)
            session.execute(delete(vectors))
            new_rows = [
                {"entry_id": row.id, "version": row.published_version, "position": position, "text": text,
                 "model": self.embedder.name, "embedding": embedding_to_bytes(fresh[text])}
                for row in rows
                for position, text in enumerate(contents[row.id].texts)  # type: ignore[union-attr]
            ]  # fmt: skip
            if new_rows:
                session.execute(insert(vectors), new_rows)
            self._bump(session, [None], "reindex", author)
            return sum(len(c.texts) for c in contents.values() if c is not None)


def _needs_publish(record: EntryRecord, row: Any, live: dict[str, EntryContent | None]) -> bool:
    """Whether importing the record must publish a new version: it is to be live and is not live as it is."""
    if record.status != "published":
        return False
    return row is None or row.status != "published" or live.get(record.content.slug) != record.content
