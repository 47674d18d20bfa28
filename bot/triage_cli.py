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

import getpass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from bot.decision.calibration import (
    MIN_LABELS,
    BarFigures,
    LabelCalibration,
    PostCandidate,
    calibrate_on_labels,
    calibrate_on_traffic,
    load_validation,
    permissive,
)
from bot.decision.policy import Policy, load_policy, save_policy
from bot.traffic import Conversation, conversations_from_examples, figures, post_candidates, read_conversations

if TYPE_CHECKING:
    from bot.policy_versions import PolicyVersions

triage_app = typer.Typer(help="Triage: calibrate the policy's thresholds.", no_args_is_help=True)
policy_app = typer.Typer(help="The live policy's versions: list, diff, rollback.", no_args_is_help=True)
triage_app.add_typer(policy_app, name="policy")
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
    from_history: Annotated[
        bool,
        typer.Option(
            "--from-history", help="Refit the answer bar of each kind on the desk's labels (approved, edited and "
            "rejected drafts, sent suggestions, own replies, didn't help, thanks) instead of the conversations."
        ),
    ] = False,
    since: Annotated[
        datetime | None,
        typer.Option(help="With --from-history: only the labels given from this date (YYYY-MM-DD, UTC) on."),
    ] = None,
    min_labels: Annotated[
        int, typer.Option(help="With --from-history: a kind's bar is refitted only on at least this many labels.")
    ] = MIN_LABELS,
    by: Annotated[str | None, typer.Option(help="With --from-history: who applies it (default: your user).")] = None,
    reason: Annotated[str | None, typer.Option(help="With --from-history: why (kept with the version).")] = None,
) -> None:
    """Fit every bar for a public post to the target precision on labelled traffic: the development
    conversations and the validation tweets, pooled (starts its own NLU when none is running); or, with
    --from-history, the answer bar per kind on the desk's labels."""
    from bot.cli import STATE  # bot.cli imports this module: look STATE up when a command runs
    from bot.traffic_eval import run_traffic_eval

    settings = STATE.settings
    if from_history:
        _calibrate_from_history(
            settings.effective_database_url, policy_file or settings.training_data_dir / "policy.yml",
            target=target, since=since, min_labels=min_labels, dry_run=dry_run, by=by or getpass.getuser(),
            reason=reason,
        )  # fmt: skip
        return
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
        _note_versions(settings.effective_database_url)


def _note_versions(database_url: str) -> None:
    """The file is live only while the desk has no policy versions: say so when it has."""
    from sqlalchemy import func, inspect, select
    from sqlalchemy.exc import SQLAlchemyError

    from bot.channel.models import policy_versions
    from bot.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(policy_versions.name):
                return
            live = conn.execute(select(func.max(policy_versions.c.number))).scalar()
    except SQLAlchemyError:
        return
    finally:
        engine.dispose()
    if live is not None:
        console.print(
            f"Note: the desk's live policy is its version {live} in the database, not this file; "
            "`carebot triage policy` lists the versions.", highlight=False,
        )  # fmt: skip


# ---------------------------------------------------------------- refitting on the desk's labels


def _bar_text(bar: float) -> str:
    return "never" if bar == float("inf") else f"{bar:.4f}"


def _figures_text(figures: BarFigures) -> str:
    precision = "-" if figures.precision is None else f"{figures.precision:.3f}"
    return (
        f"{_bar_text(figures.bar):>7} {figures.coverage:>6.3f} {precision:>6} {figures.lower_bound:>6.3f} "
        f"({figures.right}/{figures.answered})"
    )


def refit_table(refit: LabelCalibration) -> list[str]:
    """The before/after table: per kind, the labels, and the bar's coverage, precision and its one-sided 95%
    lower bound, at the current bar and at the refitted one; a kind whose bar is kept says why."""
    header = f"{'kind':<18} {'labels':>6} {'right':>5} | {'bar':>7} {'cover':>6} {'prec':>6} {'lower':>6}"
    lines = [f"{header} before | after", "-" * len(header)]
    for row in refit.rows:
        start = f"{row.kind:<18} {row.labelled:>6} {row.positives:>5}"
        if row.refused is not None:
            lines.append(f"{start} | {_figures_text(row.before)} | kept: {row.refused}")
        else:
            lines.append(f"{start} | {_figures_text(row.before)} | {_figures_text(row.after)}")
    return lines


def _calibrate_from_history(
    database_url: str, policy_file: Path, *, target: float | None, since: datetime | None, min_labels: int,
    dry_run: bool, by: str, reason: str | None,
) -> LabelCalibration:  # fmt: skip
    from bot.db import make_engine, upgrade
    from bot.learning import label_candidates
    from bot.policy_versions import PolicyVersions

    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        versions = PolicyVersions(engine, policy_file)
        policy = versions.live()
        candidates = label_candidates(engine, since=None if since is None else since.replace(tzinfo=UTC))
        return _refit(versions, policy, candidates, target=target, min_labels=min_labels, dry_run=dry_run, by=by,
                      reason=reason)  # fmt: skip
    finally:
        engine.dispose()


def _refit(
    versions: PolicyVersions, policy: Policy, candidates: list[PostCandidate], *, target: float | None,
    min_labels: int, dry_run: bool, by: str, reason: str | None,
) -> LabelCalibration:  # fmt: skip
    if not candidates:
        console.print("No labelled decisions (with a kind, an FAQ entry and a score) yet: nothing to refit.")
        raise typer.Exit(1)
    refit = calibrate_on_labels(candidates, policy, target=target, min_labels=min_labels)
    target_shown = policy.target_precision if target is None else target
    typer.echo(f"Refit on {len(candidates)} labelled decisions, target precision {target_shown}:")
    for line in refit_table(refit):
        typer.echo(line)
    if not refit.changed:
        typer.echo("No bar changes: the policy stays as it is.")
        return refit
    if dry_run:
        typer.echo("Dry run: nothing written.")
        return refit
    why = reason or f"refit on {len(candidates)} labelled decisions (triage calibrate --from-history)"
    applied = versions.apply(refit.policy, by=by, reason=why)
    console.print(f"Applied as policy version {applied.number}, now live for new desks.", highlight=False)
    return refit


def _versions(policy_file: Path | None) -> tuple[Any, Any]:
    from bot.cli import STATE
    from bot.db import make_engine, upgrade
    from bot.policy_versions import PolicyVersions

    settings = STATE.settings
    upgrade(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    return engine, PolicyVersions(engine, policy_file or settings.training_data_dir / "policy.yml")


@policy_app.command("list")
def policy_list(
    policy_file: Annotated[Path | None, typer.Option("--policy", help="The policy file (the fallback).")] = None,
) -> None:
    """The policy's versions, newest (live) first: number, when, who, what and why."""
    engine, versions = _versions(policy_file)
    try:
        found = versions.versions()
        if not found:
            typer.echo("No policy versions yet: the live policy is the policy file.")
        for number, version in enumerate(found):
            live = " (live)" if number == 0 else ""
            based = f" of version {version.based_on}" if version.based_on else ""
            typer.echo(
                f"{version.number}{live}  {version.created_at:%Y-%m-%d %H:%M}  {version.created_by}  "
                f"{version.action}{based}: {version.reason}"
            )
    finally:
        engine.dispose()


@policy_app.command("diff")
def policy_diff(
    old: Annotated[int, typer.Argument(help="A version number.")],
    new: Annotated[int, typer.Argument(help="Another version number.")],
    policy_file: Annotated[Path | None, typer.Option("--policy", help="The policy file (the fallback).")] = None,
) -> None:
    """The bars that differ between two versions, old → new."""
    from bot.policy_versions import PolicyVersionError, diff

    engine, versions = _versions(policy_file)
    try:
        changes = diff(versions.get(old).policy, versions.get(new).policy)
    except PolicyVersionError as exc:
        console.print(str(exc))
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    if not changes:
        typer.echo(f"Versions {old} and {new} have the same bars.")
    for change in changes:
        typer.echo(f"{change.what}: {change.old} → {change.new}")


@policy_app.command("rollback")
def policy_rollback(
    number: Annotated[int, typer.Argument(help="The version to go back to.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the new version).")] = "rolled back",
    by: Annotated[str | None, typer.Option(help="Who rolls back (default: your user).")] = None,
    policy_file: Annotated[Path | None, typer.Option("--policy", help="The policy file (the fallback).")] = None,
) -> None:
    """Make a new live version equal to version NUMBER (audited)."""
    from bot.policy_versions import PolicyVersionError

    engine, versions = _versions(policy_file)
    try:
        restored = versions.rollback(number, by=by or getpass.getuser(), reason=reason)
    except PolicyVersionError as exc:
        console.print(str(exc))
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    typer.echo(f"Version {restored.number} is live: version {number}'s policy.")
