"""The NLU learns, against the real Rasa: a model trained with the examples agents confirmed passes the gate on the
held-out file over the current model and the current model is refused in its place, and a switch with Rasa's
PUT /model while the real worker takes customers' tweets from the sandbox X loses no tweet, answers none twice
and sends none to people for want of an NLU (SQLite and PostgreSQL).

Two small models keep it quick (trained once, then cached by content hash like the session's model): the
project's entities and a few examples of each kind, with fewer epochs; and the same with more examples of each
kind added as confirmed history. The gate's part on the development conversations is unit-tested
(tests/unit/test_nlu_gate.py): a full replay per model is too slow here.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select
from worker_support import (
    CUSTOMER_TWEETS,
    check_invariants,
    fresh_database,
    settled,
    small_training_data,
    start_worker,
    stop_worker,
    tweet,
    wait_for,
    worker_environment,
)

from bot.channel.models import inbound_tweets
from bot.db import make_engine
from bot.nlu.gate import gate
from bot.nlu.history import with_history
from bot.nlu.live import live_model, switch
from bot.nlu.server import NluServer
from bot.nlu.service import default_test_file, with_private_port
from bot.nlu.training import TrainingInputs, train
from bot.sandbox.testing import running_sandbox
from bot.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.rasa

FEW, MORE = 4, 24  # examples of each kind in the small model, and with the history added
EPOCHS = 30


def _small_nlu_data(directory: Path) -> tuple[Path, list[tuple[str, str]]]:
    """The project's pipeline with fewer epochs, its entities and FEW examples of each kind; and the next examples
    of each kind (up to MORE), as agents' confirmed history."""
    source = PROJECT_ROOT / "training_data"
    (directory / "nlu").mkdir(parents=True, exist_ok=True)
    config = (source / "config.yml").read_text().replace("epochs: 60", f"epochs: {EPOCHS}")
    assert f"epochs: {EPOCHS}" in config
    (directory / "config.yml").write_text(config)
    shutil.copy(source / "nlu" / "entities.yml", directory / "nlu" / "entities.yml")
    document = yaml.safe_load((source / "nlu" / "nlu.yml").read_text())
    blocks, history = [], []
    for block in document["nlu"]:
        if "intent" not in block:
            continue
        lines = [line[2:].strip() for line in block["examples"].splitlines() if line.strip().startswith("- ")]
        blocks.append(f"- intent: {block['intent']}\n  examples: |\n" + "".join(f"    - {t}\n" for t in lines[:FEW]))
        history += [(block["intent"], text) for text in lines[FEW:MORE] if "[" not in text]
    (directory / "nlu" / "nlu.yml").write_text('version: "3.1"\nnlu:\n' + "".join(blocks))
    return directory, history


@pytest.fixture(scope="module")
def small_models(rasa_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the small model, the small model with history), trained into the test model cache unless already there."""
    work = tmp_path_factory.mktemp("small-nlu")
    directory, history = _small_nlu_data(work / "training")
    base = TrainingInputs.from_dir(directory)
    scratch = rasa_settings.model_copy(update={"data_dir": work / "var"})
    learned, chosen = with_history(scratch, base, history, default_test_file(rasa_settings))
    assert len(chosen.kept) > 10 * len({intent for intent, _ in history})
    old, _ = train(rasa_settings, base)
    new, _ = train(rasa_settings, learned)
    return old, new


def _desk_settings(tmp_path: Path, models: tuple[Path, ...]) -> Settings:
    """Settings of a desk of its own (its models folder, live record and gate cache in tmp_path)."""
    settings = with_private_port(Settings(data_dir=tmp_path / "var", nlu_token="switch-test-token"))
    settings.models_dir.mkdir(parents=True)
    for model in models:
        shutil.copy(model, settings.models_dir / model.name)
    return settings


def test_the_model_with_history_passes_the_gate_and_the_old_one_is_refused_in_its_place(
    small_models: tuple[Path, Path], tmp_path: Path
) -> None:
    settings = _desk_settings(tmp_path, small_models)
    old, new = (settings.models_dir / model.name for model in small_models)
    held_out = default_test_file(settings)
    verdict, before, after = gate(settings, old, new, held_out, None)
    print(verdict.table(old.name, new.name))
    assert verdict.accepted, verdict.reasons
    assert after["intent_accuracy"] > before["intent_accuracy"] and after["macro_f1"] > before["macro_f1"]
    backwards, _, _ = gate(settings, new, old, held_out, None)  # both from the cache now
    assert not backwards.accepted
    assert any("intent accuracy" in reason for reason in backwards.reasons)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def worker_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return fresh_database(f"sqlite:///{tmp_path / 'carebot.db'}")
    return fresh_database(str(request.getfixturevalue("postgres_url")))


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    with running_sandbox(tmp_path / "sandbox-x.db") as running:
        yield running


def test_a_model_switch_during_traffic_loses_no_tweet_and_answers_none_twice(
    small_models: tuple[Path, Path], worker_database: str, sandbox: Any, tmp_path: Path
) -> None:
    settings = _desk_settings(tmp_path, small_models)
    old, new = (settings.models_dir / model.name for model in small_models)
    base = TrainingInputs.from_dir(settings.training_data_dir)
    log = tmp_path / "worker.log"
    with NluServer(settings, old, log_file=tmp_path / "rasa.log") as rasa:
        env = worker_environment(
            data_dir=tmp_path / "worker-var", database_url=worker_database, sandbox_url=sandbox.url, rasa=rasa,
            training_dir=small_training_data(tmp_path / "training"),
        )  # fmt: skip
        customer_tweets = {tweet(sandbox.url, f"before{n}", text)["id"] for n, text in enumerate(CUSTOMER_TWEETS)}
        worker = start_worker(env, log)
        try:
            wait_for(lambda: settled(worker_database, len(customer_tweets)), 180, "the first tweets", log)
            switching = threading.Event()
            sent_at: list[float] = []

            def keep_tweeting() -> None:  # customers tweet all through the switch, and a little after
                n = 0
                while switching.is_set() or n < 5:
                    text = CUSTOMER_TWEETS[n % len(CUSTOMER_TWEETS)]
                    customer_tweets.add(tweet(sandbox.url, f"during{n}", f"{text} ({n})")["id"])
                    sent_at.append(time.monotonic())
                    n += 1
                    time.sleep(0.15)

            switching.set()
            customers = threading.Thread(target=keep_tweeting)
            customers.start()
            time.sleep(1)  # the worker is busy with them when the switch comes
            began = time.monotonic()
            done = switch(settings, new, base)
            ended = time.monotonic()
            switching.clear()
            customers.join()
            assert [d.outcome for d in done] == ["switched"]
            assert any(began <= t <= ended for t in sent_at), "no tweet came in while the model was loading"
            assert rasa.client().model_file() == new.name
            wait_for(
                lambda: settled(worker_database, len(customer_tweets)), 180, "the tweets after the switch", log,
                worker_database,
            )  # fmt: skip
        finally:
            stop_worker(worker)
    check_invariants(worker_database, sandbox.url, customer_tweets)
    engine = make_engine(worker_database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(inbound_tweets.c.tweet_id, inbound_tweets.c.decision)).all()
    finally:
        engine.dispose()
    assert len(rows) == len(customer_tweets)
    unparsed = [row.tweet_id for row in rows if (row.decision or {}).get("nlu_error")]
    assert unparsed == []  # every tweet was triaged with a parse: none went to people for want of the NLU
    assert live_model(settings, base) == new  # a restart of `carebot nlu serve` starts with it
    posts = httpx.get(f"{sandbox.url}/sandbox/posts", timeout=10).json()["data"]
    assert posts, "the bot answered nothing"
