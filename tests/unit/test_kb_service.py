"""The editor service, with the FakeEmbedder on a scratch SQLite database: drafts, validation, publishing,
versions, rollback, unpublishing, diffs and the KB version every search index follows."""

from __future__ import annotations

import pytest
from kb_support import ScratchKb, content
from sqlalchemy import select

from knowledge_base.errors import EntryNotFound, InvalidTransition, KbImportError, KbValidationError, VersionNotFound
from knowledge_base.models import changes, vectors
from knowledge_base.service import EntryContent, EntryRecord


def test_a_draft_is_not_live(kb: ScratchKb) -> None:
    entry = kb.service.create_draft(content(), author="ed")
    assert (entry.status, entry.version, entry.published_version) == ("draft", 0, None)
    assert kb.counts() == {"entries": 1, "versions": 0, "vectors": 0, "kb_version": 0}


def test_publish_makes_version_1_with_vectors_and_bumps_the_kb_version(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    entry = kb.service.publish("restart-router", author="ann")
    assert (entry.status, entry.version, entry.published_version, entry.author) == ("published", 1, 1, "ann")
    assert kb.counts() == {"entries": 1, "versions": 1, "vectors": 3, "kb_version": 1}  # question + 2 paraphrases
    with kb.sessions() as session:
        texts = session.execute(select(vectors.c.text).order_by(vectors.c.position)).scalars().all()
        change = session.execute(select(changes)).one()
    assert texts == list(content().texts)
    assert (change.kb_version, change.entry_id, change.action) == (1, entry.id, "publish")


def test_an_edit_stays_out_of_search_until_published(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    kb.service.publish("restart-router", author="ed")
    edited = kb.service.edit("restart-router", author="ed", answer="Hold the button for 10 seconds.")
    assert edited.has_unpublished_changes and edited.published_version == 1
    assert kb.service.published([edited.id])[edited.id].content.answer == content().answer
    assert kb.counts()["kb_version"] == 1
    republished = kb.service.publish("restart-router", author="ed")
    assert (republished.version, republished.has_unpublished_changes) == (2, False)
    assert kb.service.published([edited.id])[edited.id].content.answer == "Hold the button for 10 seconds."


def test_publishing_twice_without_changes_is_refused(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    kb.service.publish("restart-router", author="ed")
    with pytest.raises(InvalidTransition, match="no unpublished changes"):
        kb.service.publish("restart-router", author="ed")
    assert kb.counts()["versions"] == 1


def test_rollback_publishes_the_old_content_as_a_new_version(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    kb.service.publish("restart-router", author="ed")
    kb.service.edit("restart-router", author="ed", answer="Second answer.", paraphrases=["only one now"])
    kb.service.publish("restart-router", author="ed")
    entry = kb.service.rollback("restart-router", 1, author="lead")
    assert (entry.version, entry.published_version, entry.content) == (3, 3, content())
    history = kb.service.history("restart-router")
    assert [(v.version, v.note) for v in history] == [
        (1, "published"), (2, "published"), (3, "rollback to version 1"),
    ]  # fmt: skip
    assert history[2].content == history[0].content
    assert kb.counts()["vectors"] == 3 and kb.counts()["kb_version"] == 3


def test_rollback_reuses_stored_embeddings_for_unchanged_texts(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    kb.service.publish("restart-router", author="ed")
    kb.service.edit("restart-router", author="ed", answer="Second answer.")
    before = kb.embedder.texts_embedded
    kb.service.publish("restart-router", author="ed")  # same question and paraphrases
    assert kb.embedder.texts_embedded == before


def test_rollback_to_a_missing_version(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    kb.service.publish("restart-router", author="ed")
    with pytest.raises(VersionNotFound, match="no version 7"):
        kb.service.rollback("restart-router", 7, author="ed")
    with pytest.raises(InvalidTransition, match="live already"):
        kb.service.rollback("restart-router", 1, author="ed")


def test_unpublish_archives_and_removes_the_vectors(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    kb.service.publish("restart-router", author="ed")
    entry = kb.service.unpublish("restart-router", author="ed")
    assert (entry.status, entry.published_version, entry.version) == ("archived", None, 1)
    assert kb.counts() == {"entries": 1, "versions": 1, "vectors": 0, "kb_version": 2}
    with pytest.raises(InvalidTransition, match="not published"):
        kb.service.unpublish("restart-router", author="ed")
    assert kb.service.publish("restart-router", author="ed").version == 2  # back, as a new version


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"question": "   "}, "the question is empty"),
        ({"answer": ""}, "the answer is empty"),
        ({"answer": "x" * 276}, "281 characters as X counts them; a tweet holds 280 (1 too many)"),
        ({"answer": "我" * 138}, "281 characters"),
        ({"slug": "Not A Slug"}, "the slug 'Not A Slug' must be"),
        ({"language": "English"}, "not a language code"),
        ({"paraphrases": ("reboot", "Reboot")}, "paraphrase 2 repeats 'Reboot'"),
    ],
)
def test_validation_names_each_problem(kb: ScratchKb, overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(KbValidationError) as caught:
        kb.service.create_draft(content(**overrides), author="ed")  # type: ignore[arg-type]
    assert any(problem in p for p in caught.value.problems), caught.value.problems
    assert kb.counts()["entries"] == 0


def test_an_answer_that_fits_exactly_with_the_signature_is_accepted(kb: ScratchKb) -> None:
    kb.service.create_draft(content(answer="x" * 275), author="ed")  # 275 + " ^bot" = 280
    assert kb.service.publish("restart-router", author="ed").version == 1


def test_all_problems_are_reported_at_once(kb: ScratchKb) -> None:
    with pytest.raises(KbValidationError) as caught:
        kb.service.create_draft(content(question="", answer=""), author="ed")
    assert len(caught.value.problems) == 2
    assert "the question is empty; the answer is empty" in str(caught.value)


def test_a_duplicate_question_names_the_other_entry(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    kb.service.publish("restart-router", author="ed")
    kb.service.create_draft(content("reboot-hub", question="How do I restart my restart router?"), author="ed")
    with pytest.raises(KbValidationError, match="duplicates the published entry 'restart-router'"):
        kb.service.publish("reboot-hub", author="ed")
    assert kb.counts()["versions"] == 1 and kb.counts()["kb_version"] == 1
    kb.service.edit("reboot-hub", author="ed", question="Where is my parcel?")
    assert kb.service.publish("reboot-hub", author="ed").version == 1


def test_check_reports_duplicates_without_saving(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    kb.service.publish("restart-router", author="ed")
    problems = kb.service.check(content("other", question=content().question))
    assert len(problems) == 1 and "'restart-router'" in problems[0] and "similarity 1.00" in problems[0]
    assert kb.service.check(content("restart-router")) == []  # an entry does not duplicate itself


def test_a_slug_is_unique(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    with pytest.raises(KbValidationError, match="exists already"):
        kb.service.create_draft(content(), author="ed")


def test_unknown_slug(kb: ScratchKb) -> None:
    with pytest.raises(EntryNotFound, match="'nope'"):
        kb.service.publish("nope", author="ed")


def test_diff_is_a_readable_unified_diff(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    kb.service.publish("restart-router", author="ed")
    kb.service.edit("restart-router", author="ed", answer="New answer.", tags=["router", "hub"])
    kb.service.publish("restart-router", author="ed")
    text = kb.service.diff("restart-router", 1, 2)
    assert text.splitlines()[:2] == ["--- restart-router version 1", "+++ restart-router version 2"]
    assert "-tags: router" in text and "+tags: router, hub" in text
    assert f"-  {content().answer}" in text and "+  New answer." in text
    assert "question" not in [line[1:].strip() for line in text.splitlines() if line[:1] in "+-"]
    assert kb.service.diff("restart-router", 2, 2) == ""
    kb.service.edit("restart-router", author="ed", question="How do I reboot my router?")
    assert "+  How do I reboot my router?" in kb.service.diff("restart-router", 2)  # against the working copy


def test_list_entries_filters_by_status_and_tag(kb: ScratchKb) -> None:
    kb.service.create_draft(content("a-one", tags=("billing",)), author="ed")
    kb.service.create_draft(content("b-two", question="Where is my parcel?"), author="ed")
    kb.service.publish("b-two", author="ed")
    assert [e.slug for e in kb.service.list_entries()] == ["a-one", "b-two"]
    assert [e.slug for e in kb.service.list_entries(status="published")] == ["b-two"]
    assert [e.slug for e in kb.service.list_entries(tag="billing")] == ["a-one"]
    with pytest.raises(InvalidTransition, match="unknown status"):
        kb.service.list_entries(status="live")


def test_a_failure_in_the_middle_leaves_nothing_behind(kb: ScratchKb, monkeypatch: pytest.MonkeyPatch) -> None:
    kb.service.create_draft(content(), author="ed")

    def broken_bump(*args: object, **kwargs: object) -> int:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(kb.service, "_bump", broken_bump)  # fails after the version and vectors are written
    with pytest.raises(RuntimeError):
        kb.service.publish("restart-router", author="ed")
    assert kb.counts() == {"entries": 1, "versions": 0, "vectors": 0, "kb_version": 0}
    assert kb.service.get("restart-router").status == "draft"


def test_content_is_cleaned(kb: ScratchKb) -> None:
    entry = kb.service.create_draft(
        EntryContent(slug=" tidy ", question=" Q? ", answer=" A. ", paraphrases=(" p ", "  "), tags=(" t ",)),
        author="ed",
    )
    assert entry.content == EntryContent(slug="tidy", question="Q?", answer="A.", paraphrases=("p",), tags=("t",))


def test_reindex_embeds_every_live_text_again(kb: ScratchKb) -> None:
    kb.service.create_draft(content(), author="ed")
    kb.service.publish("restart-router", author="ed")
    kb.service.create_draft(content("draft-only", question="Where is my parcel?"), author="ed")
    before = kb.embedder.texts_embedded
    assert kb.service.reindex(author="ed") == 3
    assert kb.embedder.texts_embedded - before == 3  # drafts are not embedded
    with kb.sessions() as session:
        assert session.execute(select(changes.c.entry_id).where(changes.c.action == "reindex")).scalar_one() is None


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"question": "Reset\x00 my hub?"}, "the question contains U+0000 (a control character)"),
        ({"question": "Reset \x1b[2Jmy hub?"}, "the question contains U+001B (a control character)"),
        ({"question": "Reset my\nhub?"}, "the question contains U+000A"),
        ({"answer": "Call us\x07 now."}, "the answer contains U+0007"),
        ({"answer": "Pay here \u202etxt.exe"}, "the answer contains U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ({"answer": "Hold \u2066reset\u2069 for 15 s"}, "U+2066 (LEFT-TO-RIGHT ISOLATE), U+2069"),
        ({"answer": "Pay\x9b here."}, "the answer contains U+009B"),
        ({"paraphrases": ("reset hub", "reboot\u200bhub")}, "paraphrase 2 contains U+200B (ZERO WIDTH SPACE)"),
        ({"paraphrases": ("left\u200eright",)}, "paraphrase 1 contains U+200E (LEFT-TO-RIGHT MARK)"),
        ({"tags": ("router", "hid\u00adden")}, "tag 2 contains U+00AD (SOFT HYPHEN)"),
        ({"answer": "See\u2028below"}, "the answer contains U+2028 (LINE SEPARATOR)"),
        ({"answer": "\ufeffWelcome"}, "the answer contains U+FEFF"),
        ({"answer": "Flag 🏴\U000E0061\U000E0062\U000E007F"}, "U+E0061 (TAG LATIN SMALL LETTER A)"),
    ],
)
def test_control_and_invisible_characters_are_refused_naming_the_field(
    kb: ScratchKb, overrides: dict[str, object], problem: str
) -> None:
    with pytest.raises(KbValidationError) as caught:
        kb.service.create_draft(content(**overrides), author="ed")  # type: ignore[arg-type]
    assert any(problem in p for p in caught.value.problems), caught.value.problems
    assert "not allowed" in str(caught.value)
    assert kb.counts()["entries"] == 0
    kb.service.create_draft(content(), author="ed")
    with pytest.raises(KbValidationError, match="contains U\\+"):
        kb.service.edit("restart-router", author="ed", **overrides)  # type: ignore[arg-type]
    with pytest.raises(KbImportError, match="contains U\\+"):
        kb.service.import_entries([EntryRecord(content("other-slug", **overrides))], author="ed")  # type: ignore[arg-type]


def test_emoji_sequences_line_breaks_and_tabs_in_the_answer_are_fine(kb: ScratchKb) -> None:
    wales = "🏴\U000E0067\U000E0062\U000E0077\U000E006C\U000E0073\U000E007F"
    answer = f"Our team 👩‍💻 is on it ❤️ {wales}\r\n\tCall 0800 123."
    entry = kb.service.create_draft(content(answer=answer, question="Is the café 👨‍👩‍👧 open?"), author="ed")
    assert entry.content.answer == answer.replace("\r\n", "\n")  # a browser's CR LF is stored as a newline
    assert kb.service.publish("restart-router", author="ed").version == 1
