"""`carebot training start|stop|report|review`: run a training session on a closed copy of the desk, end it,
print or export its scorecard, and review each trainee's reply beside the reference."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.settings import Settings
from bot.training import desk
from bot.training.scorecard import render_csv, render_review, render_text
from bot.training.session import TrainingError, free_port, run_session, stop_current

training_app = typer.Typer(
    help="Training mode: a closed practice desk with a replayed scenario, and each trainee's scorecard.",
    no_args_is_help=True,
)
console = Console(stderr=True)


def _settings() -> Settings:
    from bot.cli import STATE  # the root command's --settings option

    return STATE.settings


def _nlu(live: Settings, stack_push: list[object]) -> tuple[str, str]:
    """The live desk's Rasa when it answers; else one started for the session (stopped with it)."""
    from bot.nlu.client import NluClient, NluError
    from bot.nlu.server import NluServer

    try:
        with NluClient(live.effective_nlu_url, live.effective_nlu_token, timeout_s=1, retries=0) as probe:
            answering = probe.model_file() is not None
    except NluError:
        answering = False  # something else on that port, or another token: not the desk's Rasa
    if answering:
        console.print(f"Using the desk's NLU server at {live.effective_nlu_url}.")
        return live.effective_nlu_url, live.effective_nlu_token
    from bot.cli import _ensure_model

    own = live.model_copy(update={"nlu_port": free_port(), "nlu_url": None})
    server = NluServer(own, _ensure_model(own))
    with console.status("Starting Rasa for the training session (loading TensorFlow and the model)…"):
        server.start()
    stack_push.append(server)
    return server.url, own.effective_nlu_token


@training_app.command("start")
def start(
    scenario: Annotated[Path, typer.Argument(help="A traffic file (training_data/traffic/ format), optionally with "
                                                  "reference replies.")],  # fmt: skip
    speed: Annotated[float, typer.Option(help="How many times faster than recorded the scenario runs.")] = 1.0,
    trainee: Annotated[list[str] | None, typer.Option(help="A trainee's user name (repeat; default trainee1, "
                                                           "trainee2).")] = None,  # fmt: skip
    session_id: Annotated[str | None, typer.Option(hidden=True, help="The session's id (a start from the web "
                                                                     "names it).")] = None,  # fmt: skip
) -> None:
    """Start a training session isolated from the live desk and replay SCENARIO into it; runs until
    `carebot training stop` or Ctrl-C. Its scorecard is kept."""
    import signal

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # `carebot training stop`: stop like Ctrl-C

    live = _settings()
    signal.signal(signal.SIGTERM, on_sigterm)
    servers: list[object] = []
    try:
        nlu = _nlu(live, servers)
        with run_session(live, scenario, speed=speed, trainees=trainee, nlu=nlu, session_id=session_id,
                         say=console.print) as running:  # fmt: skip
            desk.write_accounts(running.directory, running.passwords)
            console.print(f"\nTraining session [bold]{running.info.id}[/]: replaying {scenario.name} at {speed:g}x.")
            console.print(f"  The training desk:   {running.info.web_url}/  (every page says TRAINING)")
            console.print(f"  Its sandbox X:       {running.info.sandbox_url}/")
            for username, password in running.passwords.items():
                console.print(f"    log in as {username:<10} password {password}")
            console.print("  `carebot training stop` (or Ctrl-C) ends it; "
                          f"`carebot training report {running.info.id}` prints the scorecard.\n")  # fmt: skip
            try:
                while True:
                    problems = running.problems()
                    if problems:
                        raise TrainingError(problems[0])
                    time.sleep(1.0)
            except KeyboardInterrupt:
                console.print("Stopping the training session…")
    finally:
        for server in servers:
            server.stop()  # type: ignore[attr-defined]


@training_app.command("stop")
def stop() -> None:
    """End the running training session; its database and scorecard stay."""
    info = stop_current(_settings())
    console.print(f"Stopped training session {info.id}; `carebot training report {info.id}` prints its scorecard.")


@training_app.command("list")
def list_sessions() -> None:
    """The training sessions kept here, newest first."""
    for view in desk.sessions(_settings()):
        state = f"stopped {view.stopped_at:%Y-%m-%d %H:%M}" if view.stopped_at else view.state
        typer.echo(f"{view.id}  {view.scenario}  x{view.speed:g}  {state}")


@training_app.command("report")
def report(
    session: Annotated[str, typer.Argument(help="The session's id (see `carebot training list`).")],
    csv: Annotated[bool, typer.Option("--csv", help="Print the scorecard as CSV.")] = False,
) -> None:
    """Print a session's scorecard per trainee: first-response times against the SLA, tone-check refusals,
    personal data echoed or not moved to DM, the FAQ entry used against the reference, the lead's review."""
    card = desk.scorecard(_settings(), session)
    typer.echo(render_csv(card) if csv else render_text(card), nl=False)


@training_app.command("scenario")
def scenario(
    out: Annotated[Path, typer.Argument(help="The scenario file to write (JSON Lines, training_data/scenarios/ "
                                             "format).")],  # fmt: skip
    from_live: Annotated[bool, typer.Option("--from-live", help="Make it from the live desk's conversations "
                                                                "(the only source so far).")] = False,  # fmt: skip
    since: Annotated[str | None, typer.Option(help="Only tickets opened at or after this moment (ISO 8601: "
                                                   "2026-12-01 or 2026-12-01T09:00Z).")] = None,  # fmt: skip
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many tickets, oldest first.")] = None,
    care_account: Annotated[str | None, typer.Option(help="The desk's handle on X, if not the sandbox X's "
                                                          "(CAREBOT_SANDBOX_ACCOUNT): its @-mentions replay as the "
                                                          "sandbox X's care account.")] = None,  # fmt: skip
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
) -> None:
    """Write a scenario from the live desk's real conversations, personal data stripped: each public customer
    turn of a ticket, with the agent's real reply to it (and the FAQ entry it used) as its reference."""
    from datetime import UTC, datetime

    from bot.db import make_engine
    from bot.training.live_scenario import build_live_scenario, write_scenario

    if not from_live:
        raise TrainingError("say where the scenario comes from: --from-live (a traffic file is a scenario already)")
    moment = None
    if since is not None:
        try:
            moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise TrainingError(f"--since {since!r} is not an ISO 8601 date or time") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if out.exists() and not force:
        raise TrainingError(f"{out} exists; --force overwrites it")
    live = _settings()
    engine = make_engine(live.effective_database_url)
    try:
        made = build_live_scenario(engine, care_account=(care_account or live.sandbox_account).lstrip("@"),
                                   replay_as=live.sandbox_account, since=moment, limit=limit)  # fmt: skip
    finally:
        engine.dispose()
    if not made.lines:
        raise TrainingError("the live desk has no public customer turns" + (f" since {since}" if since else ""))
    write_scenario(made, out)
    console.print(f"Wrote {out}: {len(made.lines)} customer turns from {made.threads} tickets, "
                  f"{made.with_reference} with the agent's real reply as reference; personal data stripped. "
                  f"`carebot training start {out}` replays it.")  # fmt: skip


@training_app.command("review")
def review(
    session: Annotated[str, typer.Argument(help="The session's id (see `carebot training list`).")],
    ticket: Annotated[int | None, typer.Option(help="The ticket whose reply is reviewed (see the list).")] = None,
    good: Annotated[bool, typer.Option("--good", help="Mark the reply good.")] = False,
    needs_work: Annotated[bool, typer.Option("--needs-work", help="Mark the reply as needing work.")] = False,
    comment: Annotated[str, typer.Option(help="What the trainee should hear about it.")] = "",
    by: Annotated[str, typer.Option(help="The reviewing lead's name.")] = "lead",
) -> None:
    """Without --ticket: list every trainee's first reply beside the reference reply, with its review. With
    --ticket and --good or --needs-work: record the lead's review of that reply (the newest counts)."""
    live = _settings()
    if ticket is None:
        if good or needs_work or comment:
            raise TrainingError("a review needs --ticket")
        typer.echo(render_review(desk.scorecard(live, session)), nl=False)
        return
    if good == needs_work:
        raise TrainingError("a review is either --good or --needs-work")
    desk.review(live, session, ticket, verdict="good" if good else "needs_work", comment=comment, by=by)
    console.print(f"Reviewed ticket {ticket}: {'good' if good else 'needs work'}.")
