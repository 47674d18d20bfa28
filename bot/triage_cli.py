"""`carebot triage …`: fit the triage policy's bars on labelled conversations and write the policy file.

The policy (training_data/policy.yml) is a versioned file a lead can read; calibration changes only its
thresholds (the answer score per kind of message, the confidence for social replies and acknowledgements) and
records what they achieved. The conversations are replayed twice through `carebot eval traffic`'s path: once
with every bar at its lowest, to see every public post the bot could make, and once with the fitted bars.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.decision.calibration import calibrate_on_traffic, permissive
from bot.decision.policy import load_policy, save_policy
from bot.traffic import figures, post_candidates, read_conversations

triage_app = typer.Typer(help="Triage: calibrate the policy's thresholds.", no_args_is_help=True)
console = Console(stderr=True)
DEFAULT_CONVERSATIONS = Path("conversations") / "dev_conversations.jsonl"


@triage_app.callback()
def _triage() -> None:
    """Triage: calibrate the policy's thresholds."""


@triage_app.command("calibrate")
def triage_calibrate(
    conversations_file: Annotated[
        Path | None,
        typer.Option("--conversations", help="Labelled conversations (JSONL); default the development set."),
    ] = None,
    policy_file: Annotated[Path | None, typer.Option("--policy", help="Policy file to update.")] = None,
    faq_file: Annotated[Path | None, typer.Option("--faq", help="The FAQ to answer from.")] = None,
    target: Annotated[float | None, typer.Option(help="Answer precision to reach (default: the policy's).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the result, do not write the policy file.")] = False,
) -> None:
    """Fit every bar for a public post to the target precision on labelled conversations (starts its own NLU
    when none is running)."""
    from bot.cli import STATE  # bot.cli imports this module: look STATE up when a command runs
    from bot.traffic_eval import run_traffic_eval

    settings = STATE.settings
    conversations_file = conversations_file or settings.training_data_dir / DEFAULT_CONVERSATIONS
    policy_file = policy_file or settings.training_data_dir / "policy.yml"
    conversations = read_conversations(conversations_file)
    policy = load_policy(policy_file)

    def stage(name: str) -> None:
        console.print(f"[dim]{name}…[/dim]", highlight=False)

    outcomes, _ = run_traffic_eval(settings, conversations, faq_file=faq_file, policy=permissive(policy),
                                   on_stage=stage)  # fmt: skip
    fitted = calibrate_on_traffic(
        post_candidates(outcomes), policy, target=target, calibrated_on=f"{conversations_file.name}, "
        f"{date.today().isoformat()}",
    )  # fmt: skip
    for name, bar in fitted.thresholds.items():
        typer.echo(f"{name}: {bar}")
    outcomes, report = run_traffic_eval(settings, conversations, faq_file=faq_file, policy=fitted.policy,
                                        on_stage=stage)  # fmt: skip
    achieved = figures(outcomes)
    typer.echo(
        f"with these bars: post precision {achieved['post_precision']} ({achieved['automatic_posts']} posts), "
        f"answer coverage {achieved['answer_coverage']}, wrongly silenced {achieved['wrongly_silenced']}"
    )
    if not dry_run:
        save_policy(fitted.policy, policy_file)
        console.print(f"Wrote {policy_file} (policy version {fitted.policy.version}).", highlight=False)
