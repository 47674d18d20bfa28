"""`carebot eval clinc150` end to end on a tiny slice of CLINC150 (5 intents, 10 training utterances each, 50
out-of-scope queries per split, 2 epochs), against the real Rasa and the real MiniLM. The full benchmark is run by
hand (docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.eval_cli import eval_app
from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.rasa

CLINC = PROJECT_ROOT.parent / "shared" / "data" / "clinc150" / "data_full.json"
# Trained models are cached across sessions, as tests/conftest.py does for the project's model.
MODEL_CACHE = Path(os.environ.get("CAREBOT_TEST_CACHE", Path.home() / ".cache" / "carebot-tests"))
KEYS = ("auroc", "answer_precision", "coverage", "oos_recall", "in_scope_accuracy")


@pytest.fixture
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command reads its settings from bot.cli's STATE: make it load them again, from this environment."""
    from bot.cli import STATE

    monkeypatch.setattr(STATE, "_settings", None)
    monkeypatch.setattr(STATE, "settings_file", None)


@pytest.mark.usefixtures("fresh_state")
def test_clinc150_on_a_tiny_slice() -> None:
    if not CLINC.is_file():
        pytest.skip(f"CLINC150 is not at {CLINC} (see ../shared/data/README.md)")
    command = [
        "clinc150", "--data", str(CLINC), "--json", "--epochs", "2", "--max-train-per-intent", "10",
        "--max-intents", "5", "--max-oos", "50",
    ]  # fmt: skip
    env = {"CAREBOT_DATA_DIR": str(MODEL_CACHE), "CAREBOT_NLU_TOKEN": "clinc-test-token"}
    result = CliRunner().invoke(eval_app, command, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["intents"] == 5
    assert report["examples"]["train"] == 50
    assert report["examples"]["oos_test"] == 50
    assert report["examples"]["oos_train"] == 50  # the KB head's out_of_scope class
    assert report["rasa_failed_parses"] == 0
    for variant in ("pipeline", "kb_only", "rasa_only"):
        figures = report[variant]
        for key in KEYS:
            value = figures[key]
            if key == "answer_precision" and figures["coverage"] == 0 and figures["oos_recall"] == 1:
                assert value is None  # nothing answered: no precision to speak of
            else:
                assert isinstance(value, float) and 0.0 <= value <= 1.0, (variant, key, value)
        # 50 out-of-scope val queries are too few for the 95% bound to let any through
        assert figures["allowed_oos_val_answers"] == 0
        assert figures["val"]["oos_recall"] == 1.0
    assert report["timings"]["total_s"] > 0
