"""Benchmark of the decisions: the bot's public posts on labelled traffic, side by side with an earlier carebot.

    python -m bench.decisions --json [--out FILE] [--baseline-tree DIR]

Measures, in one run:
- the development set (training_data/conversations/dev_conversations.jsonl) replayed through `carebot eval traffic`;
- the triage validation set (training_data/triage_validation.yml: single tweets, each with the entry that
  answers it or none) through the same path;
- with --baseline-tree, an earlier checkout of carebot (e.g. `git worktree add /tmp/before <commit>`) on both
  sets: its own NLU data and model, its own policy, and every customer turn asked as a fresh tweet through its
  `carebot ask --json` (what earlier carebots offered; they had no replay of threads). Its decisions are
  scored with the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import emit, machine
from bot.decision.calibration import load_validation
from bot.nlu.service import free_port
from bot.settings import PROJECT_ROOT, load_settings
from bot.traffic import (
    Conversation,
    TurnOutcome,
    conversations_from_examples,
    figures,
    read_conversations,
)
from bot.traffic_eval import run_traffic_eval

DEV_SET = PROJECT_ROOT / "training_data" / "conversations" / "dev_conversations.jsonl"
VALIDATION = PROJECT_ROOT / "training_data" / "triage_validation.yml"
KEPT = (
    "customer_turns", "automatic_posts", "automatic_posts_right", "post_precision", "posts_by_kind", "answerable",
    "answered_right", "answer_coverage", "drafted_right", "wrongly_silenced", "social_replies_right",
    "social_replies_wrong", "expected_vs_outcome",
)  # fmt: skip


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {key: report[key] for key in KEPT if key in report}


def _baseline_outcomes(tree: Path, conversations: list[Conversation], data_dir: Path) -> list[TurnOutcome]:
    """Every customer turn through the earlier tree's `carebot ask --json`, with its own NLU server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    env.update(
        PYTHONPATH=str(tree), CAREBOT_DATA_DIR=str(data_dir), CAREBOT_TRAINING_DATA_DIR=str(tree / "training_data"),
        CAREBOT_NLU_PORT=str(free_port()), CAREBOT_RASA_VENV=str(PROJECT_ROOT / ".venv-rasa"),
    )  # fmt: skip
    data_dir.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "nlu", "serve"], env=env, cwd=tree, stdout=subprocess.DEVNULL,
        stderr=open(data_dir / "nlu-serve.log", "ab"), stdin=subprocess.DEVNULL,  # noqa: SIM115
    )  # fmt: skip
    try:
        turns = [(c, t) for c in conversations for t in c.turns if t.author == "customer"]
        texts = "".join(" ".join(t.text.split()) + "\n" for _, t in turns)
        deadline = time.monotonic() + 900
        while True:  # `nlu serve` trains first when its model is not cached
            probe = subprocess.run(
                [sys.executable, "-m", "bot", "ask", "--json", "hello"], env=env, cwd=tree, capture_output=True,
                text=True,
            )  # fmt: skip
            if probe.returncode == 0 and not json.loads(probe.stdout)["nlu_unavailable"]:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the baseline's NLU server did not start (see {data_dir / 'nlu-serve.log'})")
            time.sleep(5)
        done = subprocess.run(
            [sys.executable, "-m", "bot", "ask", "--json"], env=env, cwd=tree, input=texts, capture_output=True,
            text=True, check=True,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(60)
    outcomes = []
    for (conversation, turn), line in zip(turns, done.stdout.splitlines(), strict=True):
        result = json.loads(line)
        decision = result["decision"]
        posts = result["reply_status"] == "bot_posts"
        kind = {"faq_answer": "faq"}.get(decision["reply"], decision["reply"]) if posts else None
        outcomes.append(TurnOutcome(
            conversation.id, turn.id, decision["band"], (decision.get("faq") or {}).get("slug"), kind,
            result["reply"] if posts else None, intent=decision.get("intent"), expected=turn.expected,
        ))  # fmt: skip
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--baseline-tree", type=Path, default=None, help="an earlier carebot checkout")
    args = parser.parse_args()
    settings = load_settings()
    sets = {
        "dev_conversations": read_conversations(DEV_SET),
        "triage_validation": conversations_from_examples([(e.text, e.faq) for e in load_validation(VALIDATION)]),
    }
    report: dict[str, Any] = {
        "benchmark": "decisions", "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
    }  # fmt: skip
    for name, conversations in sets.items():
        started = time.perf_counter()
        _, figures_now = run_traffic_eval(settings, conversations)
        report[name] = {
            "now": {**_summary(figures_now), "seconds": round(time.perf_counter() - started, 1),
                    "nlu": figures_now["nlu"], "policy_version": figures_now["policy_version"]},
        }  # fmt: skip
    if args.baseline_tree is not None:
        tree = args.baseline_tree.resolve()
        commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()  # fmt: skip
        report["baseline"] = {"tree": str(tree), "commit": commit, "how": "each customer turn through carebot ask"}
        for name, conversations in sets.items():
            outcomes = _baseline_outcomes(tree, conversations, settings.data_dir / "bench-baseline")
            report[name]["baseline"] = _summary(figures(outcomes))
    emit(report, args.out)


if __name__ == "__main__":
    main()
