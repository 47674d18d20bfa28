"""`carebot triage …`: fit the triage policy's bars on labelled traffic and write the policy file.

The policy (training_data/policy.yml) is a versioned file a lead can read; calibration changes only its
thresholds (the answer score per kind of message, the confidence for social replies and acknowledgements) and
records what they achieved. The labelled traffic is the development conversations and, pooled with them, the
validation file of single tweets (training_data/triage_validation.yml): bars fitted on one set alone were
in-sample optimistic (right 0.98 of the time there, 0.93 on the other). Each set is replayed twice through
`carebot eval traffic`'s path: once with every bar at its lowest, to see every public post the bot could make,
and once with the fitted bars.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.decision.calibration import calibrate_on_traffic, load_validation, permissive
from bot.decision.policy import load_policy, save_policy
from bot.traffic import Conversation, conversations_from_examples, figures, post_candidates, read_conversations

triage_app = typer.Typer(help="Triage: calibrate the policy's thresholds.", no_args_is_help=True)
console = Console(stderr=True)
DEFAULT_CONVERSATIONS = Path("conversations") / "dev_conversations.jsonl"
DEFAULT_VALIDATION = Path("triage_validation.yml")


def labelled_sets(conversations_file: Path, validation_file: Path | None) -> list[tuple[str, list[Conversation]]]:
    """The labelled traffic to fit on, by name: the conversations, then the validation tweets (if any) as
    one-turn conversations."""
    sets = [(conversations_file.name, read_conversations(conversations_file))]
    if validation_file is not None:
        examples = load_validation(validation_file)
        sets.append((validation_file.name, conversations_from_examples([(e.text, e.faq) for e in examples])))
    return sets


@triage_app.callback()
def _triage() -> None:
    """Triage: calibrate the policy's thresholds."""


@triage_app.command("calibrate")
def triage_calibrate(
    conversations_file: Annotated[
        Path | None,
        typer.Option("--conversations", help="Labelled conversations (JSONL); default the development set."),
    ] = None,
    validation_file: Annotated[
        Path | None,
        typer.Option(
            "--validation", help="Labelled single tweets (YAML) pooled with the conversations; default "
            "training_data/triage_validation.yml when it exists."
        ),
    ] = None,
    conversations_only: Annotated[
        bool, typer.Option("--conversations-only", help="Fit on the conversations alone.")
    ] = False,
    policy_file: Annotated[Path | None, typer.Option("--policy", help="Policy file to update.")] = None,
    faq_file: Annotated[Path | None, typer.Option("--faq", help="The FAQ to answer from.")] = None,
    target: Annotated[float | None, typer.Option(help="Answer precision to reach (default: the policy's).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the result, do not write the policy file.")] = False,
) -> None:
    """Fit every bar for a public post to the target precision on labelled traffic: the development
    conversations and the validation tweets, pooled (starts its own NLU when none is running)."""
    from bot.cli import STATE  # bot.cli imports this module: look STATE up when a command runs
    from bot.traffic_eval import run_traffic_eval

    settings = STATE.settings
    conversations_file = conversations_file or settings.training_data_dir / DEFAULT_CONVERSATIONS
    if conversations_only:
        validation_file = None
    elif validation_file is None and (settings.training_data_dir / DEFAULT_VALIDATION).exists():
        validation_file = settings.training_data_dir / DEFAULT_VALIDATION
    policy_file = policy_file or settings.training_data_dir / "policy.yml"
    sets = labelled_sets(conversations_file, validation_file)
    policy = load_policy(policy_file)

    def stage(name: str) -> None:
        console.print(f"[dim]{name}…[/dim]", highlight=False)

    candidates = []
    for _, conversations in sets:
        outcomes, _ = run_traffic_eval(settings, conversations, faq_file=faq_file, policy=permissive(policy),
                                       on_stage=stage)  # fmt: skip
        candidates += post_candidates(outcomes)
    fitted = calibrate_on_traffic(
        candidates, policy, target=target,
        calibrated_on=f"{' + '.join(name for name, _ in sets)}, {date.today().isoformat()}",
    )  # fmt: skip
    for name, bar in fitted.thresholds.items():
        typer.echo(f"{name}: {bar}")
    for name, conversations in sets:
        outcomes, _ = run_traffic_eval(settings, conversations, faq_file=faq_file, policy=fitted.policy,
                                       on_stage=stage)  # fmt: skip
        achieved = figures(outcomes)
        typer.echo(
            f"{name} with these bars: post precision {achieved['post_precision']} ({achieved['automatic_posts']} "
            f"posts), answer coverage {achieved['answer_coverage']}, wrongly silenced {achieved['wrongly_silenced']}"
        )
    if not dry_run:
        save_policy(fitted.policy, policy_file)
        console.print(f"Wrote {policy_file} (policy version {fitted.policy.version}).", highlight=False)
