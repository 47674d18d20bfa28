"""The CLINC150 evaluation: AUROC, one FAQ entry per intent, and the whole run on a tiny CLINC-shaped file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge_base.errors import KbError
from knowledge_base.evaluation import auroc, clinc_records, evaluate_clinc
from knowledge_base.testing import FakeEmbedder


def test_auroc() -> None:
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert auroc([0.5, 0.5], [0.5]) == 0.5  # ties count half
    assert auroc([0.9, 0.4], [0.5, 0.1]) == 0.75


def test_one_entry_per_intent_with_unique_paraphrases() -> None:
    records = clinc_records([("what is my balance", "balance"), ("balance please", "balance"),
                             ("Balance please", "balance"), ("book a flight", "book_flight")])  # fmt: skip
    assert [r.content.slug for r in records] == ["balance", "book-flight"]
    assert records[0].content.question == "what is my balance"
    assert records[0].content.paraphrases == ("balance please",)
    assert all(r.status == "published" for r in records)


def test_a_tiny_clinc_file_end_to_end(tmp_path: Path) -> None:
    def split(intent_words: dict[str, str], n: int) -> list[list[str]]:
        return [[f"{words} {k}", intent] for intent, words in intent_words.items() for k in range(n)]

    intents = {"check_balance": "balance of my account", "book_flight": "book a flight ticket"}
    data = {
        "train": split(intents, 3), "val": split(intents, 2), "test": split(intents, 2),
        "oos_val": [["sing me a song", "oos"]], "oos_test": [["tell me a joke", "oos"], ["weather on mars", "oos"]],
    }  # fmt: skip
    path = tmp_path / "data_full.json"
    path.write_text(json.dumps(data))
    report = evaluate_clinc(path, FakeEmbedder())
    assert (report["entries"], report["vectors"]) == (2, 6)
    assert report["test"]["top1_accuracy"] == 1.0
    assert report["test"]["oos_auroc_top_score"] == 1.0
    assert report["threshold"]["test"]["out_of_scope_escalated"] == 1.0


def test_a_file_that_is_not_clinc(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"train": []}))
    with pytest.raises(KbError, match="is not CLINC150's data_full.json"):
        evaluate_clinc(path, FakeEmbedder())
