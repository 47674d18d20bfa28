"""The gate a new NLU model passes before it is used: it is compared with the current model on the held-out NLU
file (intent accuracy, macro F1: `carebot nlu eval`'s figures) and on the development conversations (post
precision, FAQ coverage, problems silenced: `carebot eval traffic`'s figures), and refused when it is worse than
the current model beyond a small tolerance on any of them.

A model's figures are kept in the models folder, named by the model (whose name is the content hash of what
trained it) and a hash of what the evaluation reads, so the current model is not evaluated again at each gate.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.settings import Settings

Stage = Callable[[str], None]


class NluGateRefused(Exception):
    """The new model is worse than the current one: it is not used."""


def default_conversations(settings: Settings) -> Path:
    return settings.training_data_dir / "conversations" / "dev_conversations.jsonl"


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    higher_is_better: bool
    tolerance: float  # how much worse the new model may be on it and still pass
    overridable: bool  # whether `carebot nlu switch --force` may use a model worse on it
    count: bool = False  # a number of turns, not a ratio


MEASURES = (
    Measure("intent_accuracy", "intent accuracy (held-out)", True, 0.01, True),
    Measure("macro_f1", "macro F1 (held-out)", True, 0.01, True),
    Measure("post_precision", "post precision (dev conversations)", True, 0.005, True),
    Measure("answer_coverage", "FAQ coverage (dev conversations)", True, 0.01, True),
    Measure("wrongly_silenced", "problems silenced (dev conversations)", False, 0, False, count=True),
)
TRAFFIC_KEYS = ("post_precision", "answer_coverage", "wrongly_silenced")


@dataclass(frozen=True)
class Row:
    measure: Measure
    old: float | None
    new: float | None

    @property
    def worse(self) -> bool:
        """Worse beyond the tolerance (a figure missing on either side compares as not worse)."""
        if self.old is None or self.new is None:
            return False
        change = self.new - self.old if self.measure.higher_is_better else self.old - self.new
        return change < -self.measure.tolerance - 1e-9


@dataclass(frozen=True)
class Verdict:
    rows: tuple[Row, ...]

    @property
    def accepted(self) -> bool:
        return not any(row.worse for row in self.rows)

    @property
    def overridable(self) -> bool:
        """Whether every figure it is worse on may be overridden (never problems silenced)."""
        return all(row.measure.overridable for row in self.rows if row.worse)

    @property
    def reasons(self) -> list[str]:
        return [
            f"{row.measure.label}: {_fmt(row.new, row.measure.count)} against {_fmt(row.old, row.measure.count)}, "
            f"worse by more than {_fmt(row.measure.tolerance, row.measure.count)}"
            for row in self.rows
            if row.worse
        ]

    def table(self, old_name: str, new_name: str) -> str:
        header = f"{'':<40}{'current':>10}{'new':>10}{'change':>10}  tolerance"
        lines = [f"current model: {old_name}", f"new model:     {new_name}", header]
        for row in self.rows:
            count = row.measure.count
            change = "" if row.old is None or row.new is None else f"{row.new - row.old:+.{0 if count else 3}f}"
            mark = "  WORSE" if row.worse else ""
            lines.append(
                f"{row.measure.label:<40}{_fmt(row.old, count):>10}{_fmt(row.new, count):>10}{change:>10}  "
                f"{_fmt(row.measure.tolerance, count)}{mark}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "overridable": self.overridable,
            "reasons": self.reasons,
            "figures": {row.measure.key: {"current": row.old, "new": row.new, "worse": row.worse} for row in self.rows},
        }


def _fmt(value: float | None, count: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if count else f"{value:.3f}"


def decide(old: Mapping[str, Any], new: Mapping[str, Any], measures: Sequence[Measure] = MEASURES) -> Verdict:
    """Compare the figures of the current model (`old`) with the new one's; a measure neither has is left out."""
    rows = []
    for measure in measures:
        if measure.key not in old and measure.key not in new:
            continue
        before, after = old.get(measure.key), new.get(measure.key)
        rows.append(Row(measure, None if before is None else float(before), None if after is None else float(after)))
    return Verdict(tuple(rows))


# ------------------------------------------------------------------ evaluating one model


def _digest(paths: Sequence[Path], *extra: str) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    for value in extra:
        digest.update(value.encode() + b"\0")
    return digest.hexdigest()[:16]


def evaluation_key(settings: Settings, test_file: Path, conversations: Path | None) -> str:
    """What the figures of a model depend on besides the model: the held-out file and, for the conversations,
    the conversations, the FAQ, the policy, the tone guide, the out-of-scope texts and the embedding model."""
    data = settings.training_data_dir
    paths = [test_file]
    extra = ["held-out-only"]
    if conversations is not None:
        paths += [conversations, data / "faq.yml", data / "policy.yml", data / "tone.yml", data / "out_of_scope.yml"]
        extra = [settings.kb_embedding_model or "default", settings.kb_embedding_backend]
    return _digest(paths, *extra)


def cache_path(settings: Settings, model: Path, key: str) -> Path:
    return settings.models_dir / "evaluations" / f"{model.name.removesuffix('.tar.gz')}-{key}.json"


def model_figures(
    settings: Settings,
    model: Path,
    test_file: Path,
    conversations: Path | None,
    *,
    on_stage: Stage = lambda stage: None,
) -> dict[str, Any]:
    """The model's figures on the held-out file and (unless None) the conversations, from the cache when this
    model was evaluated on the same inputs before."""
    path = cache_path(settings, model, evaluation_key(settings, test_file, conversations))
    if path.is_file():
        try:
            cached: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            on_stage(f"figures of {model.name} from the cache")
            return cached
        except ValueError:
            pass  # a damaged cache file: evaluate again
    figures = _evaluate(settings, model, test_file, conversations, on_stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    os.replace(temporary, path)
    return figures


def _evaluate(
    settings: Settings, model: Path, test_file: Path, conversations: Path | None, on_stage: Stage
) -> dict[str, Any]:
    from bot.nlu.evaluation import evaluate, load_examples
    from bot.nlu.server import NluServer
    from bot.nlu.service import parse_many, with_private_port

    examples = load_examples(test_file)
    private = with_private_port(settings)
    on_stage(f"starting Rasa with {model.name} on a private port")
    with NluServer(private, model, log_file=settings.data_dir / "logs" / "rasa-gate.log") as server:
        with server.client() as client:
            on_stage(f"parsing the {len(examples)} held-out examples")
            report = evaluate(examples, parse_many(client, [e.text for e in examples]))
        figures: dict[str, Any] = {
            "model": model.name, "intent_accuracy": report["intent_accuracy"], "macro_f1": report["macro_f1"],
            "fallback_rate": report["fallback_rate"], "held_out_examples": report["examples"],
        }  # fmt: skip
        if conversations is not None:
            from bot.traffic import read_conversations
            from bot.traffic_eval import run_traffic_eval

            on_stage(f"replaying the conversations of {conversations.name}")
            served = private.model_copy(update={"nlu_url": server.url, "nlu_urls": []})
            _, traffic = run_traffic_eval(served, read_conversations(conversations), on_stage=on_stage)
            figures.update({key: traffic[key] for key in TRAFFIC_KEYS})
            figures["customer_turns"] = traffic["customer_turns"]
    return figures


def gate(
    settings: Settings,
    current: Path,
    candidate: Path,
    test_file: Path,
    conversations: Path | None,
    *,
    on_stage: Stage = lambda stage: None,
) -> tuple[Verdict, dict[str, Any], dict[str, Any]]:
    """Evaluate both models (the cache first) and compare them."""
    old = model_figures(settings, current, test_file, conversations, on_stage=on_stage)
    new = model_figures(settings, candidate, test_file, conversations, on_stage=on_stage)
    return decide(old, new), old, new
