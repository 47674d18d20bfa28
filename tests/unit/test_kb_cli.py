"""`carebot kb`: user mistakes end in one `error: …` line with exit code 1 and change nothing.

These commands never need the embedding model, so they run in about a second each.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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
