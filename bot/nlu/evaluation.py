"""Reads labelled examples from Rasa NLU YAML and scores predictions against them. Pure: no I/O but reading.

Metrics: intent accuracy of the classifier's own best intent, the same among the texts that the
FallbackClassifier let through, the fallback rate, per-intent precision/recall/F1, macro F1 and the
most confused pairs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.nlu.client import NluResult

# Rasa's inline entity annotation: [text](entity), [text]{"entity": ...}
_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


class TrainingDataError(ValueError):
    """A training or test file is not valid Rasa NLU YAML."""


@dataclass(frozen=True)
class Example:
    text: str
    intent: str


def strip_annotations(text: str) -> str:
    return _ANNOTATION.sub(r"\1", text)


def load_examples(path: Path) -> list[Example]:
    """The intent examples of one Rasa NLU YAML file, with entity annotations removed."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TrainingDataError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("nlu"), list):
        raise TrainingDataError(f"{path}: no `nlu:` list")
    examples: list[Example] = []
    for block in document["nlu"]:
        if not isinstance(block, dict) or "intent" not in block:
            continue
        raw = block.get("examples")
        if not isinstance(raw, str):
            raise TrainingDataError(f"{path}: intent {block['intent']!r} has no `examples: |` block")
        for line in raw.splitlines():
            line = line.strip()
            if not line:
                continue
            if not line.startswith("- "):
                raise TrainingDataError(f"{path}: intent {block['intent']!r}: example without '- ': {line!r}")
            examples.append(Example(strip_annotations(line[2:].strip()), str(block["intent"])))
    if not examples:
        raise TrainingDataError(f"{path}: no intent examples")
    return examples


def evaluate(examples: Sequence[Example], results: Sequence[NluResult], top_confused: int = 10) -> dict[str, Any]:
    """Score predictions (results[i] is the parse of examples[i])."""
    if len(examples) != len(results):
        raise ValueError("one result per example is needed")
    if not examples:
        raise ValueError("nothing to evaluate")
    gold = [e.intent for e in examples]
    predicted = [r.top_intent.name for r in results]
    accepted = [i for i, r in enumerate(results) if not r.is_fallback]

    labels = sorted(set(gold) | set(predicted))
    per_intent: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_intent[label] = {
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "support": tp + fn,
        }  # fmt: skip
    gold_labels = sorted(set(gold))
    confused = Counter((g, p) for g, p in zip(gold, predicted, strict=True) if g != p)
    correct = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p)
    return {
        "examples": len(examples),
        "intent_accuracy": round(correct / len(examples), 4),
        "macro_f1": round(sum(per_intent[label]["f1"] for label in gold_labels) / len(gold_labels), 4),
        "fallback_rate": round(1 - len(accepted) / len(examples), 4),
        "accuracy_when_not_fallback": (
            round(sum(1 for i in accepted if gold[i] == predicted[i]) / len(accepted), 4) if accepted else None
        ),
        "per_intent": per_intent,
        "most_confused": [
            {"intent": g, "predicted": p, "count": n} for (g, p), n in confused.most_common(top_confused)
        ],
    }
