"""The gate before a new NLU model is used: refused when worse than the current model beyond its stated tolerance
on any figure (held-out accuracy and macro F1, post precision, FAQ coverage, problems silenced), accepted when
better or equal; the current model's figures come from the cache, not a new evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.nlu import gate as gate_module
from bot.nlu.gate import MEASURES, decide, gate, model_figures
from bot.settings import Settings

CURRENT = {
    "intent_accuracy": 0.90, "macro_f1": 0.88, "post_precision": 0.98, "answer_coverage": 0.60,
    "wrongly_silenced": 2,
}  # fmt: skip


def test_an_equal_model_is_accepted() -> None:
    verdict = decide(CURRENT, dict(CURRENT))
    assert verdict.accepted and verdict.reasons == []
    assert [row.measure.key for row in verdict.rows] == [m.key for m in MEASURES]


def test_a_better_model_is_accepted() -> None:
    better = {**CURRENT, "intent_accuracy": 0.93, "macro_f1": 0.91, "post_precision": 0.99, "wrongly_silenced": 1}
    assert decide(CURRENT, better).accepted


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("intent_accuracy", 0.88), ("macro_f1", 0.86), ("post_precision", 0.97), ("answer_coverage", 0.58),
        ("wrongly_silenced", 3),
    ],
)  # fmt: skip
def test_a_model_worse_on_any_figure_is_refused_with_the_figures(key: str, value: float) -> None:
    verdict = decide(CURRENT, {**CURRENT, key: value})
    assert not verdict.accepted
    assert [row.measure.key for row in verdict.rows if row.worse] == [key]
    (reason,) = verdict.reasons
    table = verdict.table("nlu-old.tar.gz", "nlu-new.tar.gz")
    label = next(m.label for m in MEASURES if m.key == key)
    assert label in reason and label in table and "WORSE" in table
    assert verdict.to_dict()["figures"][key] == {"current": CURRENT[key], "new": value, "worse": True}


def test_a_small_drop_within_the_tolerance_passes() -> None:
    slightly = {**CURRENT, "intent_accuracy": 0.895, "macro_f1": 0.871, "post_precision": 0.976}
    assert decide(CURRENT, slightly).accepted


def test_silencing_a_problem_more_cannot_be_overridden_other_figures_can() -> None:
    assert decide(CURRENT, {**CURRENT, "intent_accuracy": 0.5}).overridable
    assert not decide(CURRENT, {**CURRENT, "intent_accuracy": 0.5, "wrongly_silenced": 3}).overridable


def test_figures_missing_on_both_sides_are_left_out_and_an_undefined_one_does_not_refuse() -> None:
    held_out = {"intent_accuracy": 0.9, "macro_f1": 0.9}
    verdict = decide(held_out, {"intent_accuracy": 0.95, "macro_f1": 0.9})
    assert [row.measure.key for row in verdict.rows] == ["intent_accuracy", "macro_f1"]
    assert decide({**CURRENT, "post_precision": None}, CURRENT).accepted  # the current model posted nothing


def test_the_current_model_is_evaluated_once_then_taken_from_the_cache(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluated: list[str] = []

    def fake_evaluate(settings: Settings, model: Path, test_file: Path, conversations: Any, on_stage: Any) -> Any:
        evaluated.append(model.name)
        return {**CURRENT, "intent_accuracy": 0.80 if "new" in model.name else 0.90}

    monkeypatch.setattr(gate_module, "_evaluate", fake_evaluate)
    settings.models_dir.mkdir(parents=True)
    old, new = settings.models_dir / "nlu-old.tar.gz", settings.models_dir / "nlu-new.tar.gz"
    test_file = tmp_path / "nlu_test.yml"
    test_file.write_text("nlu: []\n")
    verdict, _, _ = gate(settings, old, new, test_file, None)
    assert not verdict.accepted and evaluated == ["nlu-old.tar.gz", "nlu-new.tar.gz"]
    gate(settings, old, new, test_file, None)
    assert evaluated == ["nlu-old.tar.gz", "nlu-new.tar.gz"]  # both from the cache
    test_file.write_text("nlu: [] # changed\n")  # another held-out file: evaluated again
    model_figures(settings, old, test_file, None)
    assert evaluated[-1] == "nlu-old.tar.gz" and len(evaluated) == 3
