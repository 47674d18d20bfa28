"""`carebot eval …`: benchmarks. `carebot eval clinc150` runs the full pipeline (Rasa + KB) on CLINC150, with the
KB-only and Rasa-only variants side by side (see bot/clinc_eval.py).

bot/cli.py mounts it with `app.add_typer(eval_app, name="eval")`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.clinc_eval import DEFAULT_EPOCHS, DEFAULT_MIN_OOS_RECALL, DEFAULT_TARGET, run_clinc_eval
from bot.settings import Settings

eval_app = typer.Typer(help="Benchmarks: the whole pipeline on public data sets.", no_args_is_help=True)
console = Console(stderr=True)
VARIANTS = ("pipeline", "kb_only", "rasa_only")


@eval_app.callback()
def _eval() -> None:
    """Benchmarks: the whole pipeline on public data sets."""


def _settings() -> Settings:
    from bot.cli import STATE  # bot.cli imports this module: look STATE up when a command runs

    return STATE.settings


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@eval_app.command("clinc150")
def eval_clinc150(
    data: Annotated[Path, typer.Option(help="CLINC150's data_full.json.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    epochs: Annotated[int, typer.Option(min=1, help="DIET training epochs for the Rasa model.")] = DEFAULT_EPOCHS,
    max_train_per_intent: Annotated[
        int, typer.Option(min=1, help="Training utterances per intent (CLINC150 has 100: all).")
    ] = 100,
    target_precision: Annotated[
        float, typer.Option(min=0.5, max=1.0, help="Answer precision the thresholds aim for on val.")
    ] = DEFAULT_TARGET,
    min_oos_recall: Annotated[
        float,
        typer.Option(min=0.5, max=1.0, help="Out-of-scope recall the thresholds must keep (95% bound on val)."),
    ] = DEFAULT_MIN_OOS_RECALL,
    max_intents: Annotated[int | None, typer.Option(min=1, hidden=True, help="Only the first N intents.")] = None,
    max_oos: Annotated[int | None, typer.Option(min=1, hidden=True, help="At most N out-of-scope per split.")] = None,
) -> None:
    """Build the KB and a Rasa model from CLINC150 train, calibrate on val, report on test + oos_test."""
    last = {"percent": -1}

    def stage(name: str) -> None:
        console.print(f"[dim]{name}…[/dim]", highlight=False)

    def progress(percent: int) -> None:
        if percent // 10 > last["percent"] // 10:
            console.print(f"[dim]  Rasa training {percent}%[/dim]", highlight=False)
        last["percent"] = percent

    report = run_clinc_eval(
        _settings(), data, epochs=epochs, max_train_per_intent=max_train_per_intent, max_intents=max_intents,
        max_oos=max_oos, target=target_precision, min_oos_recall=min_oos_recall, on_stage=stage,
        on_train_progress=progress,
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    typer.echo(
        f"CLINC150: {report['intents']} intents; thresholds for answer precision {target_precision} and "
        f"out-of-scope recall {min_oos_recall} on val, figures on test + oos_test"
    )
    keys = ("in_scope_accuracy", "auroc", "answer_precision", "coverage", "oos_recall")
    typer.echo(f"{'variant':<10}" + "".join(f"{key:>19}" for key in keys))
    for variant in VARIANTS:
        typer.echo(f"{variant:<10}" + "".join(f"{_fmt(report[variant][key]):>19}" for key in keys))
    for variant in VARIANTS:
        figures = report[variant]
        typer.echo(f"{variant}: answers at score >= {figures['threshold']} ({figures['continuous_score']})")
    typer.echo(f"timings (s): {report['timings']}")


@eval_app.command("traffic")
def eval_traffic(
    conversations_file: Annotated[
        Path,
        typer.Argument(help="Labelled conversations, one JSON object per line (or a triage validation .yml file)."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write one decision per customer turn (JSONL).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    faq_file: Annotated[
        Path | None, typer.Option("--faq", help="The FAQ to answer from (YAML or CSV); default training_data/faq.yml.")
    ] = None,
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="The triage policy; default the live one.")
    ] = None,
) -> None:
    """Replay labelled conversations through the worker's decision path in a scratch database: what the bot would
    post, hand to people or leave alone, and how often its public posts were right."""
    from bot.decision.calibration import load_validation
    from bot.decision.policy import load_policy
    from bot.traffic import conversations_from_examples, read_conversations
    from bot.traffic_eval import run_traffic_eval, write_decisions

    settings = _settings()
    if conversations_file.suffix in (".yml", ".yaml"):  # single tweets, each with the entry that answers it
        examples = load_validation(conversations_file)
        conversations = conversations_from_examples([(example.text, example.faq) for example in examples])
    else:
        conversations = read_conversations(conversations_file)
    policy = load_policy(policy_file) if policy_file else None

    def stage(name: str) -> None:
        console.print(f"[dim]{name}…[/dim]", highlight=False)

    outcomes, report = run_traffic_eval(settings, conversations, faq_file=faq_file, policy=policy, on_stage=stage)
    write_decisions(outcomes, out)
    report["decisions_file"] = str(out)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{report['conversations']} conversations, {report['customer_turns']} labelled customer turns")
    typer.echo(
        f"automatic public posts: {report['automatic_posts']}, right {report['automatic_posts_right']} "
        f"(precision {_fmt(report['post_precision'])})"
    )
    for kind, figures in report["posts_by_kind"].items():
        typer.echo(f"  {kind:<12} {figures['posts']:>4} posts, {figures['wrong']} wrong")
    typer.echo(
        f"FAQ answers: {report['answered_right']} of {report['answerable']} answerable turns "
        f"(coverage {_fmt(report['answer_coverage'])}); {report['drafted_right']} more drafted for an agent"
    )
    typer.echo(f"wrongly silenced: {report['wrongly_silenced']} of {report['needs_a_reply_or_person']}")
    typer.echo(f"social replies: {report['social_replies_right']} right, {report['social_replies_wrong']} wrong")
    typer.echo(f"decisions: {out}")
