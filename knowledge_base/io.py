"""FAQ files: import and export in YAML and CSV, with line numbers in every error.

YAML is the format of training_data/faq.yml:

    version: 1
    entries:
      - slug: restart-router
        question: How do I restart my Kestrel Hub?
        paraphrases: ["reboot hub?", …]
        answer: Switch the Hub off …
        tags: [router, internet]
        language: en
        status: published        # optional: published (the default), draft or archived

CSV has one row per entry under the header `slug,question,paraphrases,answer,tags,language,status`.
The paraphrases and tags cells hold JSON lists (`["reboot hub?", "restart router"]`): a paraphrase may
contain any character, " | " and commas included, and the file still round-trips losslessly. Files are
UTF-8 (a byte-order mark is accepted); the export ends its lines with CRLF, as RFC 4180 says, so that a
carriage return inside a text is quoted like a line break. Parsing checks the shape of the file; the service
then checks the content; either way a bad file is refused as a whole, every problem named with its line.

A spreadsheet runs a cell that starts with =, +, -, @, a tab or a carriage return as a formula (CSV injection):
the CSV export puts a single quote before such a cell (OWASP's rule), and before a cell of quotes followed by one
of those characters. The CSV import takes one quote off any cell of one or more quotes followed by one of those
characters, so carebot's own export imports unchanged, whatever the text starts with. A hand-made file whose cell
starts with '= or '- therefore loses that first quote; every other cell is read as it is.

An import file is read only up to 2 MB (knowledge_base.safe_yaml.MAX_FILE_BYTES); a larger one is refused before
it is parsed. YAML is read without anchors or aliases and at most 20 levels deep; a JSON cell in a CSV file
nested too deeply is refused like any other bad cell.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from knowledge_base.errors import KbImportError
from knowledge_base.safe_yaml import FileTooLarge, YamlProblem, compose_and_load, read_limited
from knowledge_base.service import EntryContent, EntryRecord

FORMAT_VERSION = 1
CSV_COLUMNS = ("slug", "question", "paraphrases", "answer", "tags", "language", "status")
_FIELDS = set(CSV_COLUMNS)
_REQUIRED = ("slug", "question", "answer")


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".yml", ".yaml"):
        return "yaml"
    if suffix == ".csv":
        return "csv"
    raise KbImportError(str(path), ["the file name must end in .yml, .yaml or .csv"])


def read_file(path: Path) -> list[EntryRecord]:
    """The entries in a YAML or CSV file (by its extension). Raises KbImportError listing every problem."""
    kind = file_format(path)
    try:
        raw = read_limited(path)
    except FileTooLarge as exc:
        raise KbImportError(str(path), [f"{exc}: import it in parts"]) from exc
    except OSError as exc:
        raise KbImportError(str(path), [f"cannot read it ({exc.strerror or exc})"]) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise KbImportError(str(path), [f"line {line}: not UTF-8 text"]) from exc
    return parse_yaml(text, str(path)) if kind == "yaml" else parse_csv(text, str(path))


def write_file(path: Path, records: Sequence[EntryRecord]) -> None:
    """Write the entries as YAML or CSV (by the extension), atomically."""
    text = dump_yaml(records) if file_format(path) == "yaml" else dump_csv(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -------------------------------------------------------------------- YAML
def _record_dict(record: EntryRecord) -> dict[str, Any]:
    c = record.content
    return {
        "slug": c.slug, "question": c.question, "paraphrases": list(c.paraphrases), "answer": c.answer,
        "tags": list(c.tags), "language": c.language, "status": record.status,
    }  # fmt: skip


def dump_yaml(records: Sequence[EntryRecord]) -> str:
    document = {"version": FORMAT_VERSION, "entries": [_record_dict(r) for r in records]}
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=100_000)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def parse_yaml(text: str, source: str = "YAML") -> list[EntryRecord]:
    try:
        root, data = compose_and_load(text)
    except YamlProblem as exc:
        where = f"line {exc.line}" if exc.line else "the file"
        raise KbImportError(source, [f"{where}: {exc.problem}"]) from exc
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise KbImportError(source, ["line 1: expected `version: 1` and a list of `entries:`"])
    top = {key.value: value for key, value in root.value}
    problems = []
    if data.get("version") != FORMAT_VERSION:
        line = _line(top["version"]) if "version" in top else 1
        problems.append(f"line {line}: `version` must be {FORMAT_VERSION}")
    entries_node = top.get("entries")
    if not isinstance(entries_node, yaml.SequenceNode) or not isinstance(data.get("entries"), list):
        line = _line(entries_node) if entries_node is not None else 1
        raise KbImportError(source, [*problems, f"line {line}: `entries` must be a list of entries"])
    records = []
    for node, item in zip(entries_node.value, data["entries"], strict=True):
        record, item_problems = _yaml_record(node, item)
        problems += item_problems
        if record is not None:
            records.append(record)
    if problems:
        raise KbImportError(source, problems)
    return records


def _yaml_record(node: yaml.Node, item: Any) -> tuple[EntryRecord | None, list[str]]:
    line = _line(node)
    if not isinstance(node, yaml.MappingNode) or not isinstance(item, dict):
        return None, [f"line {line}: an entry must be a mapping of slug, question, answer, …"]
    problems = []
    field_lines: dict[str, int] = {}
    for key, value in node.value:
        if key.value in field_lines:
            problems.append(f"line {_line(key)}: `{key.value}` appears twice in this entry")
        field_lines[key.value] = _line(value)
    values: dict[str, Any] = {}
    for name, value in item.items():
        where = field_lines.get(str(name), line)
        if name not in _FIELDS:
            problems.append(f"line {where}: unknown field `{name}` (fields: {', '.join(CSV_COLUMNS)})")
        elif name in ("paraphrases", "tags"):
            if value is None:
                value = []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"line {where}: `{name}` must be a list of texts (quote numbers and yes/no)")
            values[name] = value
        elif not isinstance(value, str):
            problems.append(f"line {where}: `{name}` must be text, not {_yaml_kind(value)} (quote it)")
        else:
            values[name] = value
    problems += [f"line {line}: the entry has no `{name}`" for name in _REQUIRED if name not in item]
    if problems:
        return None, problems
    return _record(values, line), []


def _yaml_kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "yes/no"
    return {int: "a number", float: "a number", list: "a list", dict: "a mapping"}.get(type(value), "a date")


def _record(values: dict[str, Any], line: int) -> EntryRecord:
    content = EntryContent(
        slug=values["slug"], question=values["question"], answer=values["answer"],
        paraphrases=tuple(values.get("paraphrases") or ()), tags=tuple(values.get("tags") or ()),
        language=values.get("language") or "en",
    )  # fmt: skip
    return EntryRecord(content, values.get("status") or "published", line=line)


# -------------------------------------------------------------------- CSV
def dump_csv(records: Sequence[EntryRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: a CR inside a text is quoted too
    writer.writerow(CSV_COLUMNS)
    for record in records:
        row = _record_dict(record)
        for name in ("paraphrases", "tags"):
            row[name] = json.dumps(row[name], ensure_ascii=False)
        writer.writerow([neutral_cell(row[name]) for name in CSV_COLUMNS])
    return out.getvalue()


# A cell a spreadsheet would run as a formula, possibly behind quotes this module added (see the docstring).
_FORMULA_START = re.compile(r"'*[=+\-@\t\r]")
_NEUTRALISED = re.compile(r"'+[=+\-@\t\r]")


def neutral_cell(text: str) -> str:
    """A CSV cell no spreadsheet runs as a formula: a quote before a cell that starts like one."""
    return "'" + text if _FORMULA_START.match(text) else text


def original_cell(cell: str) -> str:
    """The text neutral_cell made `cell` from."""
    return cell[1:] if _NEUTRALISED.match(cell) else cell


def parse_csv(text: str, source: str = "CSV") -> list[EntryRecord]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[str] = []
    records: list[EntryRecord] = []
    try:
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header] != list(CSV_COLUMNS):
            raise KbImportError(source, [f"line 1: the header must be {','.join(CSV_COLUMNS)}"])
        end_of_previous = reader.line_num
        for row in reader:
            line, end_of_previous = end_of_previous + 1, reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(CSV_COLUMNS):
                problems.append(f"line {line}: {len(row)} columns, expected {len(CSV_COLUMNS)}")
                continue
            values: dict[str, Any] = dict(zip(CSV_COLUMNS, map(original_cell, row), strict=True))
            row_problems = []
            for name in ("paraphrases", "tags"):
                values[name], problem = _json_list(values[name])
                if problem:
                    row_problems.append(f"line {line}: `{name}` {problem}")
            problems += row_problems
            problems += [f"line {line}: `{name}` is empty" for name in _REQUIRED if not values[name].strip()]
            if not row_problems:
                records.append(_record(values, line))
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: not valid CSV ({exc})")
    if problems:
        raise KbImportError(source, problems)
    return records


def _json_list(cell: str) -> tuple[list[str], str | None]:
    if not cell.strip():
        return [], None
    try:
        value = json.loads(cell)
    except (ValueError, RecursionError):  # RecursionError: lists nested thousands deep
        return [], 'must be a JSON list of texts, like ["first", "second"]'
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return [], 'must be a JSON list of texts, like ["first", "second"]'
    return value, None
