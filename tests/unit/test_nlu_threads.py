"""Each Rasa server's thread pools (TensorFlow's, BLAS's, OpenMP's) are held to CAREBOT_NLU_THREADS: a parse is
small, and idle pool threads spinning after every parse cost CPU per tweet (bench.throughput)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.nlu.server import THREAD_VARIABLES, NluServer
from bot.settings import Settings


def rasa_environment_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: object) -> dict[str, str]:
    for variable in THREAD_VARIABLES:
        monkeypatch.setenv(variable, "7")  # what the shell that starts carebot happens to have
    (tmp_path / "rasa" / "bin").mkdir(parents=True)
    (tmp_path / "rasa" / "bin" / "rasa").touch()
    config = Settings(data_dir=tmp_path / "var", nlu_token="t", rasa_venv=tmp_path / "rasa", **settings)
    return NluServer(config, tmp_path / "model.tar.gz").environment()


def test_rasa_runs_its_thread_pools_with_one_thread_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = rasa_environment_with(tmp_path, monkeypatch)
    assert {variable: environment.get(variable) for variable in THREAD_VARIABLES} == dict.fromkeys(
        THREAD_VARIABLES, "1"
    )


def test_nlu_threads_set_the_count_and_zero_leaves_the_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rasa_environment_with(tmp_path / "a", monkeypatch, nlu_threads=2)["TF_INTRA_OP_PARALLELISM_THREADS"] == "2"
    untouched = rasa_environment_with(tmp_path / "b", monkeypatch, nlu_threads=0)
    assert all(untouched.get(variable) == "7" for variable in THREAD_VARIABLES)
