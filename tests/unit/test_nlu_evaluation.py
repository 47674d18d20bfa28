"""Scoring predictions against held-out examples, and reading Rasa NLU YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.nlu.client import IntentScore, NluResult
from bot.nlu.evaluation import Example, TrainingDataError, evaluate, load_examples, strip_annotations


def result(intent: str, confidence: float = 0.9, guess: str | None = None) -> NluResult:
    ranking = [IntentScore(intent, confidence)]
    if guess:
        ranking.append(IntentScore(guess, confidence - 0.1))
    return NluResult(text="t", intent=intent, confidence=confidence, ranking=tuple(ranking), entities=())


def test_scores() -> None:
    examples = [Example("a", "greeting"), Example("b", "greeting"), Example("c", "thanks"), Example("d", "thanks")]
    results = [result("greeting"), result("thanks"), result("thanks"), result("nlu_fallback", 0.3, guess="thanks")]
    report = evaluate(examples, results)
    assert report["intent_accuracy"] == 0.75  # the fallback's own best guess (thanks) counts as right
    assert report["fallback_rate"] == 0.25
    assert report["accuracy_when_not_fallback"] == round(2 / 3, 4)
    assert report["per_intent"]["greeting"] == {"precision": 1.0, "recall": 0.5, "f1": round(2 / 3, 4), "support": 2}
    assert report["per_intent"]["thanks"]["precision"] == round(2 / 3, 4)
    assert report["macro_f1"] == round((2 / 3 + 0.8) / 2, 4)
    assert report["most_confused"] == [{"intent": "greeting", "predicted": "thanks", "count": 1}]


def test_mismatched_lengths_refused() -> None:
    with pytest.raises(ValueError):
        evaluate([Example("a", "x")], [])


def test_annotations_are_stripped() -> None:
    assert strip_annotations("my [fibre](product) is [KT-12345678]{\"entity\": \"customer_number\"}") == (
        "my fibre is KT-12345678"
    )


def test_load_examples(tmp_path: Path) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text('version: "3.1"\nnlu:\n- intent: greeting\n  examples: |\n    - hi\n    - hello [there](x)\n'
                    "- regex: phone\n  examples: |\n    - \\d+\n")
    assert load_examples(path) == [Example("hi", "greeting"), Example("hello there", "greeting")]


@pytest.mark.parametrize(
    "content",
    [
        "nlu: [",
        "just text",
        "nlu:\n- intent: x\n",
        "nlu:\n- intent: x\n  examples: |\n    hi without dash\n",
        "nlu: []",
    ],
)
def test_malformed_files_are_named(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(content)
    with pytest.raises(TrainingDataError, match="bad.yml"):
        load_examples(path)
