"""`carebot triage …`: fit the triage policy's thresholds on validation data and write the policy file.

The policy (training_data/policy.yml) is a versioned file a lead can read; calibration changes only its
thresholds and records what they achieved on validation.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.decision.calibration import calibrate, load_validation, records_from_examples, report_lines
from bot.decision.policy import load_policy, save_policy
from bot.desk import open_desk
from bot.nlu.client import NluError, NluResult
from knowledge_base.search import SearchResult

triage_app = typer.Typer(help="Triage: calibrate the policy's thresholds.", no_args_is_help=True)
console = Console(stderr=True)


@triage_app.command("calibrate")
def triage_calibrate(
    validation: Annotated[
        Path | None, typer.Option(help="Validation tweets ({text, faq: slug|null}); default training_data/.")
    ] = None,
    policy_file: Annotated[Path | None, typer.Option("--policy", help="Policy file to update.")] = None,
    target: Annotated[float | None, typer.Option(help="Answer precision to reach (default: the policy's).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the result, do not write the policy file.")] = False,
) -> None:
    """Fit the auto and approve thresholds to the target precision on validation data (needs the NLU server)."""
    from bot.cli import STATE  # bot.cli imports this module: look STATE up when a command runs

    settings = STATE.settings
    validation = validation or settings.training_data_dir / "triage_validation.yml"
    policy_file = policy_file or settings.training_data_dir / "policy.yml"
    examples = load_validation(validation)
    policy = load_policy(policy_file)
    with open_desk(settings) as desk:
        desk.nlu.parse("hello")  # fail now, clearly, when the NLU server is not running

        def parse(text: str) -> NluResult | None:
            try:
                return desk.nlu.parse(text)
            except NluError:
                return None

        def search(text: str) -> SearchResult | None:
            return desk.kb.searcher.search(text)

        with console.status(f"Running {len(examples)} validation tweets through NLU and FAQ search…"):
            records = records_from_examples(examples, parse, search)
    result = calibrate(records, policy, target=target, calibrated_on=date.today().isoformat())
    for line in report_lines(result):
        typer.echo(line)
    if not dry_run:
        save_policy(result.policy, policy_file)
        console.print(f"Wrote {policy_file} (policy version {result.policy.version}).", highlight=False)
