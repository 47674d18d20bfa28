"""Switching the running NLU to another model (Rasa's PUT /model, fake servers over real loopback HTTP): each
server loads it in turn, a refused model leaves the old one in place, a server without a model (HTTP 409) is
waited for and failed over like a down one, and the live model is recorded so that a restart serves it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bot.nlu.client import NluClient, NluModelRefused, NluUnavailable
from bot.nlu.live import live_model, read_live, serving_model, switch
from bot.nlu.service import free_port
from bot.nlu.testing import FakeRasaServer
from bot.nlu.training import TrainingInputs, model_path_for
from bot.settings import Settings


def _model(settings: Settings, name: str) -> Path:
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    path = settings.models_dir / name
    path.write_bytes(b"not a real model")
    return path


def _on(settings: Settings, *fakes: FakeRasaServer) -> Settings:
    return settings.model_copy(update={"nlu_urls": [fake.url for fake in fakes], "nlu_token": fakes[0].token})


def test_every_running_server_loads_the_model_and_it_is_recorded_live(settings: Settings) -> None:
    model = _model(settings, "nlu-new.tar.gz")
    base = TrainingInputs.from_dir(settings.training_data_dir)
    dead = f"http://127.0.0.1:{free_port()}"
    with FakeRasaServer() as a, FakeRasaServer() as b:
        configured = _on(settings, a, b).model_copy(update={"nlu_urls": [a.url, dead, b.url]})
        done = switch(configured, model, base, {"intent_accuracy": 0.9})
        assert [d.outcome for d in done] == ["switched", "not running", "switched"]
        assert a.loads == b.loads == [str(model.resolve())]
        assert a.model_file == b.model_file == "nlu-new.tar.gz"
        assert [d.outcome for d in switch(configured, model, base)] == ["already", "not running", "already"]
        assert len(a.loads) == 1
    record = read_live(settings)
    assert record is not None and record["model"] == "nlu-new.tar.gz" and record["base_hash"] == base.content_hash()
    assert live_model(settings, base) == model
    assert serving_model(settings, base) == model  # what `carebot nlu serve` and `carebot up` start with


def test_a_live_model_of_other_training_data_is_not_served(settings: Settings, tmp_path: Path) -> None:
    model = _model(settings, "nlu-new.tar.gz")
    base = TrainingInputs.from_dir(settings.training_data_dir)
    with FakeRasaServer() as fake:
        switch(_on(settings, fake), model, base)
    changed_data = tmp_path / "training"
    (changed_data / "nlu").mkdir(parents=True)
    (changed_data / "config.yml").write_bytes(base.config.read_bytes() + b"\n# changed\n")
    for path in base.nlu_files:
        (changed_data / "nlu" / path.name).write_bytes(path.read_bytes())
    other = TrainingInputs.from_dir(changed_data)
    assert live_model(settings, other) is None
    assert serving_model(settings, other) == model_path_for(settings, other)
    model.unlink()  # the live model's file is gone: the shipped data's model again
    assert serving_model(settings, base) == model_path_for(settings, base)


def test_a_model_rasa_cannot_load_is_refused_and_the_old_one_stays(settings: Settings) -> None:
    model = _model(settings, "nlu-broken.tar.gz")
    base = TrainingInputs.from_dir(settings.training_data_dir)
    with FakeRasaServer() as a, FakeRasaServer() as b:
        a.refuse_loads = True
        with pytest.raises(NluModelRefused, match="could not be loaded"):
            switch(_on(settings, a, b), model, base)
        assert a.model_file == b.model_file == "fake.tar.gz"
        assert b.loads == []  # the servers after the refusing one are not asked
    assert read_live(settings) is None


def test_a_wrong_token_is_no_switch(settings: Settings) -> None:
    model = _model(settings, "nlu-new.tar.gz")
    with FakeRasaServer() as fake, NluClient(fake.url, "wrong") as client:
        with pytest.raises(Exception, match="auth token"):
            client.replace_model(fake.url, str(model))
        assert fake.model_file == "fake.tar.gz"


def test_parses_during_a_load_wait_for_it_and_are_answered(settings: Settings) -> None:
    """As Rasa does, the fake answers nothing while it loads; a parse sent meanwhile is answered after it."""
    model = _model(settings, "nlu-new.tar.gz")
    with FakeRasaServer() as fake:
        fake.load_delay_s = 1.0
        loading = threading.Thread(target=lambda: NluClient(fake.url, fake.token).replace_model(fake.url, str(model)))
        with NluClient(fake.url, fake.token, timeout_s=5) as client:
            loading.start()
            while not fake.loads:  # the load has begun
                time.sleep(0.01)
            assert client.parse("hello").intent == "greeting"
            loading.join()
        assert fake.answered_by == ["nlu-new.tar.gz"]  # held during the load, then answered by the new model


def test_a_server_without_a_model_is_failed_over_and_waited_for() -> None:
    with FakeRasaServer(mode="loading") as empty, FakeRasaServer() as ready:
        with NluClient([empty.url, ready.url], empty.token) as client:
            assert all(client.parse(f"hi {i}").intent == "greeting" for i in range(4))
            assert not client.replicas[0].up  # out until it has a model
    with FakeRasaServer(mode="loading") as empty, NluClient(empty.url, empty.token, retries=0) as client:
        with pytest.raises(NluUnavailable, match="no model loaded"):  # unavailable: the worker keeps the tweet waiting
            client.parse("hello")
        assert client.model_files() == {empty.url: None}
        empty.mode = "ok"
        assert client.parse("hello").intent == "greeting"
