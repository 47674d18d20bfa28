"""`carebot kb`: user mistakes end in one `error: …` line with exit code 1 and change nothing.

These commands never need the embedding model, so they run in about a second each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert

from knowledge_base.models import entries


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CAREBOT_DATA_DIR": str(tmp_path / "var")}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=60, env=environment,
        stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip


def test_a_malformed_file_is_refused_with_line_numbers(tmp_path: Path) -> None:
    bad = tmp_path / "faq.csv"
    bad.write_text("slug,question,paraphrases,answer,tags,language,status\nok,Q?,[],A.,[],en,published\nbroken,Q?\n")
    result = run(["kb", "import", str(bad)], tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "line 3: 2 columns, expected 7" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    listing = run(["kb", "list", "--json"], tmp_path)
    assert listing.returncode == 0 and listing.stdout.strip() == "[]"


def test_an_unknown_slug(tmp_path: Path) -> None:
    for command in (["show", "nope"], ["history", "nope"], ["publish", "nope"], ["rollback", "nope", "2"]):
        result = run(["kb", *command], tmp_path)
        assert result.returncode == 1, command
        assert "error: no FAQ entry with the slug 'nope'" in result.stderr
        assert "Traceback" not in result.stderr


def test_clinc_eval_with_a_missing_file(tmp_path: Path) -> None:
    result = run(["kb", "clinc-eval", "--data", str(tmp_path / "missing.json")], tmp_path)
    assert result.returncode == 1
    assert "cannot read the CLINC150 data" in result.stderr and "Traceback" not in result.stderr


def test_stored_control_and_bidi_characters_are_never_printed_raw(tmp_path: Path) -> None:
    assert run(["kb", "list"], tmp_path).returncode == 0  # creates the database
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'carebot.db'}")
    hostile = "Pay\x1b]0;owned\x07 here\u202e\x00\x9b?"
    with engine.begin() as conn:  # written before the editor refused such text
        conn.execute(insert(entries).values(
            slug="old-entry", question=hostile, paraphrases=["a\u2066b"], answer="Line 1\nLine 2\x1b[2J",
            tags=["t\u200b"], language="en", status="draft", version=0, published_version=None,
            author="ed\x1b[31m", created_at=datetime.now(UTC), updated_at=datetime.now(UTC),
        ))  # fmt: skip
    engine.dispose()
    listed = run(["kb", "list"], tmp_path)
    shown = run(["kb", "show", "old-entry"], tmp_path)
    as_json = run(["kb", "list", "--json"], tmp_path)
    for result in (listed, shown, as_json):
        assert result.returncode == 0, result.stderr
        assert not any(char in result.stdout for char in "\x1b\x07\x00\x9b\u202e\u2066\u200b"), result.stdout
    assert "Pay⟦U+001B⟧]0;owned⟦U+0007⟧ here⟦U+202E⟧⟦U+0000⟧⟦U+009B⟧?" in listed.stdout
    assert "Line 1\nLine 2⟦U+001B⟧[2J" in shown.stdout
    assert json.loads(as_json.stdout)[0]["question"] == hostile  # escaped, not changed


def test_a_hostile_import_file_ends_in_one_error_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yml"
    deep.write_text("version: 1\nentries: " + "[" * 20_000 + "]" * 20_000)
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * (2 * 1024 * 1024 + 1))
    for path, words in ((deep, "not valid YAML"), (big, "larger than 2 MB")):
        result = run(["kb", "import", str(path)], tmp_path)
        assert result.returncode == 1 and result.stderr.startswith("error: ") and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
