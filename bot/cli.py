"""The `carebot` command line: subcommands grouped by component (nlu, db), plus `ask` and `up`.

User mistakes and unavailable services end in one red line on stderr and exit code 1, never a traceback.
Everything the command and its child processes (Rasa, the worker, the sandbox X, the web app) create is for the
user running it only: files 0600 and directories 0700 (umask 077), the data directory included.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from bot.ask import describe
from bot.channel.cli import worker_command
from bot.db import DatabaseError, current_revision, upgrade
from bot.decision.calibration import CalibrationError
from bot.decision.policy import PolicyError
from bot.decision.tone import ToneError
from bot.desk import open_desk
from bot.eval_cli import eval_app
from bot.kb_cli import kb_app
from bot.nlu.client import NluError, NluResult
from bot.nlu.evaluation import TrainingDataError
from bot.nlu.gate import NluGateRefused, Verdict, default_conversations, gate
from bot.nlu.history import confirmed_examples, with_history
from bot.nlu.live import current_model, live_model, read_live, switch
from bot.nlu.server import NluServer, NluServerError
from bot.nlu.service import default_test_file, evaluate_held_out
from bot.nlu.training import NluTrainingError, TrainingInputs, model_path_for, train, validate_data
from bot.processes import ChildProcessError, until_stopped
from bot.sandbox.cli import sandbox_app
from bot.settings import Settings, SettingsError, load_settings, unknown_variables
from bot.traffic import TrafficFileError
from bot.training.cli import training_app
from bot.training.session import TrainingError
from bot.triage_cli import triage_app
from bot.web.cli import users_app, web_command
from knowledge_base.errors import KbError

app = typer.Typer(help="carebot: a social customer-care desk for X.", no_args_is_help=True, add_completion=False)
nlu_app = typer.Typer(help="The Rasa NLU service: train, validate, serve, evaluate.", no_args_is_help=True)
db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)
app.add_typer(nlu_app, name="nlu")
app.add_typer(db_app, name="db")
app.add_typer(kb_app, name="kb")
app.add_typer(triage_app, name="triage")
app.add_typer(eval_app, name="eval")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(users_app, name="users")
app.add_typer(training_app, name="training")
app.command("web")(until_stopped(web_command))
app.command("worker")(until_stopped(worker_command))

console = Console(stderr=True)
USER_ERRORS = (
    SettingsError, NluError, NluTrainingError, NluGateRefused, NluServerError, TrainingDataError, DatabaseError,
    KbError, PolicyError, ToneError, CalibrationError, TrafficFileError, ChildProcessError, TrainingError, OSError,
)  # fmt: skip

class _Context:
    settings_file: Path | None = None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.settings_file)
            self._settings.prepare_data_dir()
        return self._settings


STATE = _Context()


@app.callback()
def _root(
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="A settings file (CAREBOT_*=value lines).")
    ] = None,
) -> None:
    STATE.settings_file = settings_file
    STATE._settings = None
    for warning in unknown_variables():  # a misspelled CAREBOT_ variable is otherwise ignored without a word
        console.print(Text.assemble(("warning: ", "bold yellow"), warning), highlight=False, soft_wrap=True)


@contextmanager
def _progress(description: str) -> Iterator[Any]:
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    ) as progress:  # fmt: skip
        task = progress.add_task(description, total=100)

        def update(percent: int) -> None:
            progress.update(task, completed=percent)

        yield update
        progress.update(task, completed=100)


def _train_shipped(settings: Settings, force: bool = False) -> Path:
    """The model of the shipped training data, trained unless cached."""
    inputs = TrainingInputs.from_dir(settings.training_data_dir)
    target = model_path_for(settings, inputs)
    if target.is_file() and not force:
        console.print(f"NLU model up to date: {target.name}")
        return target
    with _progress("Training the NLU model") as update:
        model, _ = train(settings, inputs, force=force, on_progress=update)
    console.print(f"Trained {model}")
    return model


def _ensure_model(settings: Settings, force: bool = False) -> Path:
    """The model to serve: the live one (accepted by the gate and switched to), else the shipped data's."""
    inputs = TrainingInputs.from_dir(settings.training_data_dir)
    live = live_model(settings, inputs)
    if live is not None and not force:
        console.print(f"NLU model: the live one, {live.name}")
        return live
    record = read_live(settings)
    if record is not None and not force:
        console.print(
            f"[yellow]The live model {record['model']} was built on other training data (or is gone): serving the "
            "model of the current training data.[/yellow]"
        )
    return _train_shipped(settings, force)


def _say(stage: str) -> None:
    console.print(f"[dim]{stage}…[/dim]", highlight=False)


def _model_argument(settings: Settings, name: str) -> Path:
    """A model named by its file (in the models folder), its name, or its name without .tar.gz."""
    given = Path(name)
    folder = settings.models_dir.resolve()
    for path in (given, folder / given.name, folder / f"{given.name}.tar.gz"):
        if path.is_file():
            if path.resolve().parent != folder:
                raise NluTrainingError(f"{path} is not in the models folder {folder}: copy it there first")
            return folder / path.name
    raise NluTrainingError(f"no such model: {name} (the models are in {folder})")


def _gate(settings: Settings, current: Path, candidate: Path) -> tuple[Verdict, dict[str, Any]]:
    verdict, _, new = gate(
        settings, current, candidate, default_test_file(settings), default_conversations(settings), on_stage=_say
    )
    typer.echo(verdict.table(current.name, candidate.name))
    return verdict, new


def _switch(settings: Settings, model: Path, base: TrainingInputs, figures: dict[str, Any]) -> None:
    for done in switch(settings, model, base, figures, on_stage=_say):
        console.print(f"{done.url}: {done.outcome}")
    console.print(f"Live NLU model: {model.name} (a restart of `carebot nlu serve` or `carebot up` keeps it).")


@nlu_app.command("train")
def nlu_train(
    force: Annotated[bool, typer.Option(help="Retrain even if the data is unchanged.")] = False,
    history: Annotated[
        bool, typer.Option("--with-history", help="Add the examples agents confirmed (the training export).")
    ] = False,
    apply: Annotated[
        bool, typer.Option("--apply", help="With --with-history: switch the running NLU to the model it accepts.")
    ] = False,
) -> None:
    """Train the NLU model; skipped when the training data and config are unchanged.

    With --with-history, the examples agents confirmed are added, and the new model is compared with the current
    one on the held-out NLU file and the development conversations: a worse one is refused."""
    settings = STATE.settings
    if not history:
        if apply:
            raise SettingsError("--apply goes with --with-history")
        _train_shipped(settings, force)
        return
    base = TrainingInputs.from_dir(settings.training_data_dir)
    inputs, chosen = with_history(settings, base, confirmed_examples(settings), default_test_file(settings))
    console.print(
        f"{chosen.confirmed} examples confirmed by agents: {len(chosen.kept)} added, {chosen.already_known} already "
        f"in the training or held-out data, {chosen.unknown_kind} of a kind the NLU does not have."
    )
    target = model_path_for(settings, inputs)
    if target.is_file() and not force:
        console.print(f"NLU model up to date: {target.name}")
    else:
        with _progress("Training the NLU model with history") as update:
            target, _ = train(settings, inputs, force=force, on_progress=update)
        console.print(f"Trained {target}")
    current = current_model(settings, base)
    if current == target:
        console.print(f"{target.name} is already the current model.")
        return
    if not current.is_file():
        current = _train_shipped(settings)
    verdict, figures = _gate(settings, current, target)
    if not verdict.accepted:
        raise NluGateRefused("refused: " + "; ".join(verdict.reasons))
    console.print(f"Accepted: {target.name} is not worse than {current.name}.")
    if apply:
        _switch(settings, target, base, figures)
    else:
        console.print(f"`carebot nlu switch {target.name}` makes it live.")


@nlu_app.command("switch")
def nlu_switch(
    model: Annotated[str, typer.Argument(help="The model: its file name in the models folder.")],
    force: Annotated[
        bool,
        typer.Option(help="Use it though it is worse on accuracy, F1, precision or coverage (never on silencing)."),
    ] = False,
) -> None:
    """Make a model live: the gate compares it with the current one, then every running Rasa server loads it
    (PUT /model; tweets wait meanwhile, none is escalated) and it is recorded for the next start."""
    settings = STATE.settings
    base = TrainingInputs.from_dir(settings.training_data_dir)
    target = _model_argument(settings, model)
    current = current_model(settings, base)
    if not current.is_file():  # nothing served yet: compared with the model of the shipped training data
        current = _train_shipped(settings)
    figures: dict[str, Any] = {}
    if current != target:
        verdict, figures = _gate(settings, current, target)
        if not verdict.accepted and not (force and verdict.overridable):
            hint = "" if not verdict.overridable else " (--force uses it anyway)"
            raise NluGateRefused("refused: " + "; ".join(verdict.reasons) + hint)
    _switch(settings, target, base, figures)


@nlu_app.command("validate")
def nlu_validate() -> None:
    """Check the training data with `rasa data validate`."""
    validate_data(STATE.settings)
    console.print("Training data is valid.")


@nlu_app.command("serve")
@until_stopped
def nlu_serve(
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default: CAREBOT_NLU_PORT).")] = None,
) -> None:
    """Run the Rasa NLU server on loopback with an auth token until Ctrl-C or SIGTERM."""
    settings = STATE.settings
    if port is not None:
        settings = settings.model_copy(update={"nlu_port": port, "nlu_url": None})
    model = _ensure_model(settings)
    server = NluServer(settings, model)
    try:
        with console.status("Starting Rasa (loading TensorFlow and the model)…"):
            server.start()
        console.print(f"NLU server ready at {server.url} in {server.started_in_s:.1f} s (model {model.name}).")
        console.print("Press Ctrl-C to stop.")
        while server.is_running():
            time.sleep(0.5)
        raise NluServerError(f"Rasa stopped unexpectedly. Last lines of {server.log_file}:\n{server.log_tail()}")
    except KeyboardInterrupt:
        console.print("Stopping the NLU server…")
    finally:
        server.stop()


@nlu_app.command("eval")
def nlu_eval(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    test_file: Annotated[Path | None, typer.Option(help="Held-out Rasa NLU YAML file.")] = None,
) -> None:
    """Train on the training files, evaluate on the held-out file."""
    settings = STATE.settings
    with _progress("Training the NLU model") as update:
        report = evaluate_held_out(settings, test_file, on_train_progress=update)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(
        f"intent accuracy {report['intent_accuracy']:.3f}  macro F1 {report['macro_f1']:.3f}  "
        f"fallback rate {report['fallback_rate']:.3f}  ({report['examples']} held-out examples)"
    )
    for pair in report["most_confused"]:
        typer.echo(f"  {pair['intent']} → {pair['predicted']}: {pair['count']}")


def _describe(result: NluResult) -> str:
    top = result.top_intent
    verdict = f"fallback (best guess {top.name} {top.confidence:.2f})" if result.is_fallback else (
        f"{result.intent} {result.confidence:.2f}"
    )
    entities = ", ".join(f"{e.entity}={e.value}" for e in result.entities)
    return verdict + (f"  [{entities}]" if entities else "")


@app.command()
def ask(
    text: Annotated[str | None, typer.Argument(help="A tweet; without it, one tweet per line from stdin.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one object per line for stdin).")] = False,
) -> None:
    """What carebot would do with a tweet: the decision, its reasons and the reply it would post.

    Needs the NLU server (`carebot nlu serve` or `carebot up`); without it, the decision says so and
    nothing is auto-answered. The FAQ comes from the knowledge base (`carebot kb import`).
    """
    with open_desk(STATE.settings) as desk:
        lines = [text] if text is not None else (line.rstrip("\n") for line in sys.stdin)
        for line in lines:
            result = desk.ask(line)
            typer.echo(json.dumps(result.to_dict(), ensure_ascii=False) if as_json else describe(result))


@app.command("demo-reset")
def demo_reset() -> None:
    """Delete the demo's data (its SQLite database, the sandbox X's tweets, the demo passwords, logs) so the next
    `make demo` starts afresh; the environments and the trained NLU model stay."""
    from bot.up import reset_demo

    removed = reset_demo(STATE.settings)  # refused (one error line) for a server database or a real X
    console.print(f"Removed {len(removed)} file(s); the next `make demo` starts afresh." if removed else
                  "Nothing to remove: the demo has not run here yet.")  # fmt: skip


@app.command()
@until_stopped
def up(
    demo: Annotated[bool, typer.Option(help="Also replay recorded customer traffic into the sandbox X.")] = False,
    demo_speed: Annotated[float, typer.Option(help="How much faster than recorded the replay runs.")] = 20.0,
) -> None:
    """Start every carebot service on its embedded defaults (Rasa, the sandbox X, the worker, the web app);
    Ctrl-C stops them all."""
    from bot.up import run_up

    run_up(
        STATE.settings, console, ensure_model=_ensure_model, settings_file=STATE.settings_file, demo=demo,
        demo_speed=demo_speed,
    )  # fmt: skip


@app.command()
def health(
    processes: Annotated[
        list[str] | None, typer.Argument(help="nlu, worker, web, sandbox (default: all that are in use).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per check.")] = False,
) -> None:
    """Ask each running carebot process whether it is healthy: exit code 0 when all are, else 1.

    For a process manager's health probe: the NLU servers (a model loaded), the worker (a heartbeat in the last
    minute), the web app (/healthz) and the sandbox X.
    """
    from bot.health import PROCESSES, check

    unknown = [name for name in processes or () if name not in PROCESSES]
    if unknown:
        raise SettingsError(f"no such process: {', '.join(unknown)} (one of {', '.join(PROCESSES)})")
    results = check(STATE.settings, tuple(processes or ()))
    for result in results:
        if as_json:
            typer.echo(json.dumps(result.to_dict()))
        else:
            typer.echo(f"{'ok' if result.ok else 'FAIL':<4}  {result.process:<7}  {result.target}  ({result.detail})")
    if not all(result.ok for result in results):
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (creates the SQLite file when needed)."""
    url = STATE.settings.effective_database_url
    upgrade(url)
    console.print(f"Database at revision {current_revision(url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    typer.echo(current_revision(STATE.settings.effective_database_url) or "(empty database)")


def main() -> None:
    os.umask(0o077)  # tweets, tickets, models, logs and tokens: readable by this user only
    try:
        app()
    except USER_ERRORS as exc:
        message = " ".join(str(exc).split())  # one line, whatever the terminal's width
        console.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
        sys.exit(1)
