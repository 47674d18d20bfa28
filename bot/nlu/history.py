"""The examples agents confirmed, added to the NLU's training data (`carebot nlu train --with-history`).

They come from the desk's database through the training export of the FAQ editor (bot/web/unanswered.py,
`UnansweredQuestions.training_examples`): the first customer tweet of each resolved ticket with its kind of
message, without mentions and links, and none with personal data. Here they are kept only for the kinds the
shipped training data has (the NLU learns no new kind from history), and dropped when the shipped training data
or the held-out test file already has the text (compared without case, spacing or entity annotations), so that
the gate's held-out figures stay honest. They are written, in a stable order, to one extra NLU file whose
content enters the model's content hash: the same history finds the same cached model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.nlu.evaluation import TrainingDataError, load_examples, strip_annotations
from bot.nlu.training import TrainingInputs
from bot.settings import Settings

HISTORY_FILE = "history_agents.yml"  # its name differs from every shipped file's: all are copied into one folder


@dataclass(frozen=True)
class HistoryExamples:
    kept: tuple[tuple[str, str], ...]  # (intent, text), sorted
    already_known: int  # in the shipped training data or the held-out file
    unknown_kind: int  # of a kind the shipped training data does not have
    confirmed: int  # what the export gave


def _key(text: str) -> str:
    return " ".join(strip_annotations(text).split()).casefold()


def _examples_of(paths: Iterable[Path]) -> list[tuple[str, str]]:
    found = []
    for path in paths:
        try:
            found += [(e.intent, e.text) for e in load_examples(path)]
        except TrainingDataError:
            continue  # a file of lookup tables and regexes only: no intent examples
    return found


def select_examples(
    confirmed: Sequence[tuple[str, str]], shipped: Sequence[tuple[str, str]], held_out: Sequence[tuple[str, str]]
) -> HistoryExamples:
    """The confirmed (intent, text) pairs worth adding: of a shipped kind, new to the shipped and held-out texts,
    each text once."""
    kinds = {intent for intent, _ in shipped}
    known = {_key(text) for _, text in [*shipped, *held_out]}
    kept: dict[str, tuple[str, str]] = {}
    already = unknown = 0
    for intent, text in confirmed:
        key = _key(text)
        if not key:
            continue
        if intent not in kinds:
            unknown += 1
        elif key in known or key in kept:
            already += 1
        else:
            kept[key] = (intent, " ".join(text.split()))
    return HistoryExamples(tuple(sorted(kept.values())), already, unknown, len(confirmed))


def history_yaml(examples: Sequence[tuple[str, str]]) -> str:
    """Rasa 3 NLU YAML, one block per intent in name order; no date in it, so the same examples give the same
    bytes (and the same model hash)."""
    lines = ['version: "3.1"', "# Examples agents confirmed, from the desk's training export.", "nlu:"]
    by_intent: dict[str, list[str]] = {}
    for intent, text in examples:
        by_intent.setdefault(intent, []).append(text)
    for intent in sorted(by_intent):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in sorted(by_intent[intent])]
    return "\n".join(lines) + "\n"


def confirmed_examples(settings: Settings) -> list[tuple[str, str]]:
    """The desk's training export, as (intent, text) pairs, from the configured database (SQLite or PostgreSQL)."""
    from bot.db import make_engine
    from bot.decision.policy import load_policy
    from bot.decision.tone import ToneGuide
    from bot.kb import open_knowledge_base
    from bot.web.unanswered import UnansweredQuestions

    policy = load_policy(settings.training_data_dir / "policy.yml")
    guide = ToneGuide.load(settings.training_data_dir / "tone.yml")
    with open_knowledge_base(settings) as kb:  # migrates the database first
        engine = make_engine(settings.effective_database_url)
        try:
            export = UnansweredQuestions(engine, lambda: kb, policy, guide).training_examples()
        finally:
            engine.dispose()
    return [(example.intent, example.text) for example in export]


def with_history(
    settings: Settings, base: TrainingInputs, confirmed: Sequence[tuple[str, str]], held_out: Path | None
) -> tuple[TrainingInputs, HistoryExamples]:
    """The shipped inputs plus an NLU file of the confirmed examples worth adding (the shipped inputs alone when
    none is)."""
    shipped = _examples_of(base.nlu_files)
    test = _examples_of([held_out]) if held_out and held_out.is_file() else []
    chosen = select_examples(confirmed, shipped, test)
    if not chosen.kept:
        return base, chosen
    directory = settings.data_dir / "nlu-history"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / HISTORY_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(history_yaml(chosen.kept), encoding="utf-8")
    os.replace(temporary, path)
    return TrainingInputs(base.config, (*base.nlu_files, path), base.domain), chosen
