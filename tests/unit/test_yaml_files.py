"""carebot's own YAML files (policy, tone guide, validation data) are read with the caps of FAQ imports: a hostile
or broken file is one error naming it, never a RecursionError or an expanded alias bomb."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.yaml_files import read_yaml
from knowledge_base.safe_yaml import MAX_FILE_BYTES


class PolicyProblem(Exception):
    pass


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"bars: " + b"[" * 20_000 + b"]" * 20_000, "is not valid YAML: line 1"),
        (b"bars:\n" + b"".join(b"  " * n + b"-\n" for n in range(1, 40)), "nested more than 20 levels deep"),
        (b"a: &a [x, x]\nb: [*a, *a]\n", "anchors and aliases"),
        (b"since: 2024-02-30\n", "is not valid YAML"),
        (b"name: caf\xe9\n", "is not UTF-8 text"),
        (b"x" * (MAX_FILE_BYTES + 1), "larger than 2 MB"),
    ],
)
def test_hostile_yaml_files_are_one_error_naming_the_file(tmp_path: Path, body: bytes, words: str) -> None:
    path = tmp_path / "policy.yml"
    path.write_bytes(body)
    with pytest.raises(PolicyProblem) as caught:
        read_yaml(path, "policy file", PolicyProblem)
    assert words in str(caught.value) and str(path) in str(caught.value)


def test_a_plain_file_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "tone.yml"
    path.write_text("signature: ^bot\nbanned: [no worries]\n", encoding="utf-8")
    assert read_yaml(path, "tone guide", PolicyProblem) == {"signature": "^bot", "banned": ["no worries"]}
