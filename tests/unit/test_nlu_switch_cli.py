"""`carebot nlu switch`: a model the gate finds worse is not used (with --force it is, unless it silences more
problems), and `carebot nlu serve` and `carebot up` start with the live model (the gate's figures faked here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import bot.cli as cli
from bot.nlu.gate import NluGateRefused, decide
from bot.nlu.live import record_live
from bot.nlu.service import with_private_port
from bot.nlu.training import TrainingInputs, model_path_for
from bot.settings import Settings

CURRENT = {"intent_accuracy": 0.9, "macro_f1": 0.9, "post_precision": 0.98, "answer_coverage": 0.6,
           "wrongly_silenced": 1}  # fmt: skip


@pytest.fixture
def desk(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    settings = with_private_port(settings)  # no Rasa answers there: the current model is the shipped data's
    base = TrainingInputs.from_dir(settings.training_data_dir)
    settings.models_dir.mkdir(parents=True)
    current = model_path_for(settings, base)
    current.write_bytes(b"current")
    (settings.models_dir / "nlu-new.tar.gz").write_bytes(b"new")
    state: dict[str, Any] = {"new": dict(CURRENT), "switched": []}

    def fake_gate(settings: Settings, old: Path, new: Path, *args: Any, **kwargs: Any) -> Any:
        return decide(CURRENT, state["new"]), CURRENT, state["new"]

    def fake_switch(settings: Settings, model: Path, base: TrainingInputs, figures: Any, **kwargs: Any) -> list[Any]:
        state["switched"].append(model.name)
        return []

    monkeypatch.setattr(cli, "gate", fake_gate)
    monkeypatch.setattr(cli, "switch", fake_switch)
    monkeypatch.setattr(cli.STATE, "_settings", settings)
    state["settings"] = settings
    return state


def _switch(*args: str) -> Any:
    # the nlu commands themselves (the root callback would load settings afresh), with the fixture's settings
    return CliRunner().invoke(cli.nlu_app, ["switch", *args])


def test_an_equal_or_better_model_is_switched_to(desk: dict[str, Any]) -> None:
    result = _switch("nlu-new.tar.gz")
    assert result.exit_code == 0, result.output
    assert desk["switched"] == ["nlu-new.tar.gz"] and "intent accuracy" in result.output


def test_a_worse_model_is_refused_with_its_figures_and_force_uses_it(desk: dict[str, Any]) -> None:
    desk["new"] = {**CURRENT, "intent_accuracy": 0.8}
    result = _switch("nlu-new")
    assert isinstance(result.exception, NluGateRefused)
    assert "intent accuracy (held-out): 0.800 against 0.900" in str(result.exception)
    assert "--force" in str(result.exception) and "WORSE" in result.output
    assert desk["switched"] == []
    assert _switch("nlu-new", "--force").exit_code == 0
    assert desk["switched"] == ["nlu-new.tar.gz"]


def test_a_model_that_silences_more_problems_is_refused_even_with_force(desk: dict[str, Any]) -> None:
    desk["new"] = {**CURRENT, "wrongly_silenced": 2}
    result = _switch("nlu-new.tar.gz", "--force")
    assert isinstance(result.exception, NluGateRefused) and "problems silenced" in str(result.exception)
    assert "--force" not in str(result.exception)
    assert desk["switched"] == []


def test_serve_and_up_start_with_the_live_model(desk: dict[str, Any]) -> None:
    settings: Settings = desk["settings"]
    base = TrainingInputs.from_dir(settings.training_data_dir)
    assert cli._ensure_model(settings) == model_path_for(settings, base)
    record_live(settings, settings.models_dir / "nlu-new.tar.gz", base)
    assert cli._ensure_model(settings) == settings.models_dir / "nlu-new.tar.gz"


def test_train_with_history_gates_the_new_model_and_apply_switches_to_an_accepted_one(
    desk: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    trained: list[str] = []

    def fake_train(settings: Settings, inputs: TrainingInputs, **kwargs: Any) -> tuple[Path, bool]:
        target = model_path_for(settings, inputs)
        target.write_bytes(b"with history")
        trained.append(target.name)
        return target, True

    monkeypatch.setattr(cli, "train", fake_train)
    monkeypatch.setattr(cli, "confirmed_examples", lambda settings: [("greeting", "good morning all of you")])
    desk["new"] = {**CURRENT, "macro_f1": 0.85}
    refused = CliRunner().invoke(cli.nlu_app, ["train", "--with-history", "--apply"])
    assert isinstance(refused.exception, NluGateRefused) and "macro F1" in str(refused.exception)
    assert len(trained) == 1 and desk["switched"] == []
    desk["new"] = dict(CURRENT)
    accepted = CliRunner().invoke(cli.nlu_app, ["train", "--with-history", "--apply"])
    assert accepted.exit_code == 0, accepted.output
    assert len(trained) == 1  # the same history: the cached model
    assert desk["switched"] == trained
