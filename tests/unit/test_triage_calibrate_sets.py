"""What `carebot triage calibrate` fits on: the labelled conversations, pooled with the validation tweets as
one-turn conversations (each tweet expects its FAQ entry's answer, or a person when no entry answers it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.decision.calibration import CalibrationError
from bot.triage_cli import labelled_sets

CONVERSATION = {
    "conversation": "d1", "channel": "mention",
    "turns": [{"id": "d1-1", "author": "customer", "text": "how do i reboot the hub",
               "expected": {"action": "answer", "slug": "restart-router"}}],
}  # fmt: skip


def _files(tmp_path: Path) -> tuple[Path, Path]:
    conversations = tmp_path / "dev.jsonl"
    conversations.write_text(json.dumps(CONVERSATION) + "\n", encoding="utf-8")
    validation = tmp_path / "validation.yml"
    validation.write_text(
        'version: 1\nexamples:\n  - text: "where do i find my wifi password"\n    faq: wifi-password-find\n'
        '  - text: "my bill is wrong again"\n    faq: null\n',
        encoding="utf-8",
    )
    return conversations, validation


def test_the_validation_tweets_are_pooled_with_the_conversations(tmp_path: Path) -> None:
    conversations, validation = _files(tmp_path)
    sets = labelled_sets(conversations, validation)
    assert [name for name, _ in sets] == ["dev.jsonl", "validation.yml"]
    assert [c.id for c in sets[0][1]] == ["d1"]
    tweets = [(c.turns[0].text, c.turns[0].expected) for c in sets[1][1]]
    assert [text for text, _ in tweets] == ["where do i find my wifi password", "my bill is wrong again"]
    assert [(e.action, e.slug) for _, e in tweets] == [("answer", "wifi-password-find"), ("person", None)]


def test_without_a_validation_file_only_the_conversations(tmp_path: Path) -> None:
    conversations, _ = _files(tmp_path)
    assert [name for name, _ in labelled_sets(conversations, None)] == ["dev.jsonl"]


def test_a_broken_validation_file_is_refused(tmp_path: Path) -> None:
    conversations, validation = _files(tmp_path)
    validation.write_text("examples: [oops", encoding="utf-8")
    with pytest.raises(CalibrationError):
        labelled_sets(conversations, validation)
