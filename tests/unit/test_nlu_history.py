"""`carebot nlu train --with-history`: the examples agents confirmed (from the desk's database through the training
export: tests/integration/test_nlu_history_db.py) are kept only when new to the shipped and held-out data and of a
kind the NLU has, and are written so that the same history gives the same model hash."""

from __future__ import annotations

from bot.nlu.evaluation import load_examples
from bot.nlu.history import HISTORY_FILE, history_yaml, select_examples, with_history
from bot.nlu.service import default_test_file
from bot.nlu.training import TrainingInputs
from bot.settings import Settings

SHIPPED = [("billing_issue", "why was I charged twice"), ("greeting", "hello there")]
HELD_OUT = [("billing_issue", "my bill is wrong again")]


def test_only_new_examples_of_known_kinds_are_kept_once() -> None:
    confirmed = [
        ("billing_issue", "Why was I  CHARGED twice"),  # shipped, in other case and spacing
        ("billing_issue", "my bill is wrong again"),  # in the held-out file: kept out of training
        ("billing_issue", "you billed me for a router I sent back"),
        ("billing_issue", "you billed me for a router I sent  back"),  # the same once more
        ("made_up_kind", "something else entirely"),
        ("greeting", "morning all"),
    ]
    chosen = select_examples(confirmed, SHIPPED, HELD_OUT)
    assert chosen.kept == (("billing_issue", "you billed me for a router I sent back"), ("greeting", "morning all"))
    assert (chosen.already_known, chosen.unknown_kind, chosen.confirmed) == (3, 1, 6)


def test_the_history_file_is_valid_nlu_data_and_the_same_history_gives_the_same_model_hash(
    settings: Settings,
) -> None:
    base = TrainingInputs.from_dir(settings.training_data_dir)
    confirmed = [("billing_issue", "you billed me for a router I sent back"), ("greeting", "morning all")]
    inputs, chosen = with_history(settings, base, confirmed, default_test_file(settings))
    assert len(chosen.kept) == 2
    assert inputs.nlu_files[:-1] == base.nlu_files and inputs.nlu_files[-1].name == HISTORY_FILE
    assert {(e.intent, e.text) for e in load_examples(inputs.nlu_files[-1])} == set(confirmed)
    assert inputs.content_hash() != base.content_hash()
    again, _ = with_history(settings, base, list(reversed(confirmed)), default_test_file(settings))
    assert again.content_hash() == inputs.content_hash()
    assert history_yaml(chosen.kept) == inputs.nlu_files[-1].read_text()
    nothing_new, none = with_history(settings, base, [("greeting", "hello")], default_test_file(settings))
    assert nothing_new == base and none.kept == ()
