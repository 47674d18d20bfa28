"""The model's content hash and the training cache, without running Rasa."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.nlu.training import NluTrainingError, TrainingInputs, model_path_for, train
from bot.settings import PROJECT_ROOT, Settings


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    target = tmp_path / "training_data"
    shutil.copytree(PROJECT_ROOT / "training_data", target, ignore=shutil.ignore_patterns("faq.yml", "traffic"))
    return target


def test_hash_is_stable_and_follows_content(data_dir: Path) -> None:
    first = TrainingInputs.from_dir(data_dir).content_hash()
    assert TrainingInputs.from_dir(data_dir).content_hash() == first
    nlu_file = sorted((data_dir / "nlu").glob("*.yml"))[0]
    nlu_file.write_text(nlu_file.read_text() + "\n")
    assert TrainingInputs.from_dir(data_dir).content_hash() != first


def test_config_change_changes_hash(data_dir: Path) -> None:
    first = TrainingInputs.from_dir(data_dir).content_hash()
    config = data_dir / "config.yml"
    config.write_text(config.read_text().replace("epochs: 60", "epochs: 61"))
    assert TrainingInputs.from_dir(data_dir).content_hash() != first


def test_test_file_does_not_shape_the_model(data_dir: Path) -> None:
    first = TrainingInputs.from_dir(data_dir).content_hash()
    test_file = data_dir / "nlu_test" / "nlu_test.yml"
    test_file.write_text(test_file.read_text() + "\n")
    assert TrainingInputs.from_dir(data_dir).content_hash() == first


def test_cached_model_is_reused_without_rasa(data_dir: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", training_data_dir=data_dir, rasa_venv=tmp_path / "no-rasa")
    inputs = TrainingInputs.from_dir(data_dir)
    target = model_path_for(settings, inputs)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"model")
    assert train(settings, inputs) == (target, False)
    with pytest.raises(NluTrainingError, match="Rasa is not installed"):
        train(settings, inputs, force=True)


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NluTrainingError, match="config not found"):
        TrainingInputs.from_dir(tmp_path)
