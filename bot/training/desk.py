"""The lead's handling of training sessions, shared by `carebot training` and the web app's /lead/training:
the scenarios to choose from, the sessions kept (starting, running, ended), starting one as a background
`carebot training start` that outlives the web request, stopping it, its scorecard and the lead's review.

A start from the web runs the very command a lead types: `carebot training start SCENARIO --session-id ID`,
in a new process group, its output in `$DATA_DIR/training/ID/start.log`. The session is "up" once that command
has written the trainees' accounts (accounts.json, the owner's only), after every child process answered.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.settings import Settings, ensure_private_dir
from bot.training.scorecard import Scorecard, build_scorecard
from bot.training.session import (
    CURRENT,
    POSTED_FILE,
    REFERENCES_FILE,
    SESSION_FILE,
    X_VARIABLES,
    SessionInfo,
    TrainingError,
    session_dir,
    stop_current,
    training_root,
)

LAUNCH_FILE = "launch.json"  # written by a start from the web: what was asked for, and the command's process id
ACCOUNTS_FILE = "accounts.json"  # the session's log-ins and passwords, once every process of it answers
START_LOG = "start.log"  # the output of `carebot training start` started from the web
SCENARIO_FOLDERS = ("scenarios", "traffic")  # under the training data directory
SESSION_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[A-Za-z0-9_.-]{1,80}")
TRAINEE = re.compile(r"[a-z][a-z0-9._-]{1,63}")  # the accounts' username rule (bot/web/accounts.py)
MAX_TRAINEES = 20
MAX_SPEED = 1000.0
_launch_lock = threading.Lock()


@dataclass(frozen=True)
class ScenarioFile:
    name: str  # what the form sends: "scenarios/outage_storm.jsonl"
    path: Path
    lines: int
    with_references: bool


@dataclass(frozen=True)
class SessionView:
    """A kept session as a lead sees it; `state` is starting, running, ended or failed (it never came up)."""

    id: str
    state: str
    scenario: str
    speed: float
    trainees: list[str]
    started_at: datetime
    stopped_at: datetime | None
    web_url: str | None  # the training desk, once it is up
    passwords: dict[str, str]  # its accounts, once it is up and while it runs
    log_tail: str  # the start's last lines while it starts, or when it failed

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running")


def scenario_files(live: Settings) -> list[ScenarioFile]:
    """The scenarios a lead may start: the .jsonl files of training_data/scenarios/ and training_data/traffic/."""
    found = []
    for folder in SCENARIO_FOLDERS:
        for path in sorted((live.training_data_dir / folder).glob("*.jsonl")):
            try:
                text = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            rows = [line for line in text.splitlines() if line.strip()]
            found.append(ScenarioFile(f"{folder}/{path.name}", path, len(rows), '"reference"' in text))
    return found


def check_trainees(names: list[str]) -> list[str]:
    """The trainees' user names, lower-cased, each once; TrainingError says what is wrong."""
    cleaned = [name.strip().lower() for name in names if name.strip()]
    if not cleaned:
        raise TrainingError("name at least one trainee")
    bad = [name for name in cleaned if not TRAINEE.fullmatch(name)]
    if bad:
        raise TrainingError(f"not a user name: {', '.join(bad)} (2-64 characters: lower-case letters, digits, '.', "
                            "'_' or '-', starting with a letter)")  # fmt: skip
    if "lead" in cleaned:
        raise TrainingError("'lead' is the session's own lead account; choose another trainee name")
    if len(set(cleaned)) != len(cleaned):
        raise TrainingError("each trainee needs a name of their own")
    if len(cleaned) > MAX_TRAINEES:
        raise TrainingError(f"at most {MAX_TRAINEES} trainees")
    return cleaned


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _moment(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _view(folder: Path, current: str | None) -> SessionView | None:
    launch = _read_json(folder / LAUNCH_FILE)
    if (folder / SESSION_FILE).is_file():
        try:
            info = SessionInfo.load(folder)
        except TrainingError:
            return None
        up = (folder / ACCOUNTS_FILE).is_file()
        if info.stopped_at is not None:
            state = "failed" if (folder / START_LOG).is_file() and not up else "ended"  # it never came up
        elif current == info.id:
            state = "running" if up else "starting"
        else:
            state = "ended"  # its process is gone without marking it: `training stop` marks it
        passwords = _read_json(folder / ACCOUNTS_FILE) if state == "running" else {}
        return SessionView(
            info.id, state, info.scenario, info.speed, list(info.trainees), _moment(info.started_at) or
            datetime.now(UTC), _moment(info.stopped_at), info.web_url if state == "running" else None,
            {str(k): str(v) for k, v in passwords.items()},
            _tail(folder / START_LOG) if state in ("starting", "failed") else "",
        )  # fmt: skip
    if not launch:
        return None
    alive = isinstance(launch.get("pid"), int) and _alive(launch["pid"])
    return SessionView(
        folder.name, "starting" if alive else "failed", str(launch.get("scenario", "?")),
        float(launch.get("speed", 1.0)), [str(name) for name in launch.get("trainees", [])],
        _moment(launch.get("started_at")) or datetime.now(UTC), None, None, {}, _tail(folder / START_LOG),
    )  # fmt: skip


def sessions(live: Settings) -> list[SessionView]:
    """The kept sessions, newest first."""
    root = training_root(live)
    current_file = root / CURRENT
    current = current_file.read_text("utf-8").strip() if current_file.is_file() else None
    found = []
    for folder in sorted(root.glob("*"), reverse=True):
        if folder.is_dir() and SESSION_ID.fullmatch(folder.name):
            view = _view(folder, current)
            if view is not None:
                found.append(view)
    return found


def session(live: Settings, session_id: str) -> SessionView:
    if not SESSION_ID.fullmatch(session_id):
        raise TrainingError(f"{session_id!r} is not a training session id")
    for view in sessions(live):
        if view.id == session_id:
            return view
    raise TrainingError(f"no training session {session_id!r}")


def active(live: Settings) -> SessionView | None:
    """The session that is starting or running, if any (one at a time)."""
    return next((view for view in sessions(live) if view.active), None)


def child_environment(live: Settings) -> dict[str, str]:
    """The environment of a `carebot training start` for this live desk: the live settings as they were given
    (the web app may have read a settings file the child would not), never the X credentials."""
    env = {name: value for name, value in os.environ.items() if name not in X_VARIABLES}
    for name in live.model_fields_set:
        value = getattr(live, name)
        variable = f"CAREBOT_{name.upper()}"
        if value is None or hasattr(value, "get_secret_value") or variable in X_VARIABLES:
            continue
        env[variable] = json.dumps(value) if isinstance(value, list) else str(value)
    env.pop("CAREBOT_SETTINGS_FILE", None)
    return env


def launch(live: Settings, scenario: str, *, speed: float, trainees: list[str]) -> SessionView:
    """Start `carebot training start` in the background for the scenario (a name from `scenario_files`) and
    return the session, starting; TrainingError when one is starting or running already, or the input is bad."""
    chosen = next((item for item in scenario_files(live) if item.name == scenario), None)
    if chosen is None:
        raise TrainingError(f"no scenario {scenario!r}: choose one of training_data/scenarios/ or traffic/")
    if not 0 < speed <= MAX_SPEED:
        raise TrainingError(f"the speed is more than 0 and at most {MAX_SPEED:g} times the recorded pace")
    names = check_trainees(trainees)
    with _launch_lock:
        running = active(live)
        if running is not None:
            raise TrainingError(f"the training session {running.id} is {running.state}; stop it before starting "
                                "another (one session at a time)")  # fmt: skip
        started = datetime.now(UTC)
        session_id = f"{started:%Y%m%d-%H%M%S}-{chosen.path.stem}"
        folder = training_root(live) / session_id
        if folder.exists():
            raise TrainingError(f"a training session {session_id} exists already; try again in a second")
        ensure_private_dir(folder)
        command = [sys.executable, "-m", "bot", "training", "start", str(chosen.path), "--speed", f"{speed:g}",
                   "--session-id", session_id, *[part for name in names for part in ("--trainee", name)]]  # fmt: skip
        with open(folder / START_LOG, "ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env=child_environment(live), cwd=Path.cwd(),
            )  # fmt: skip
        # Reaped when it ends, so that a finished start is not a zombie that still looks alive.
        threading.Thread(target=process.wait, name=f"training-{session_id}", daemon=True).start()
        (folder / LAUNCH_FILE).write_text(json.dumps({
            "pid": process.pid, "scenario": chosen.path.name, "speed": speed, "trainees": names,
            "started_at": started.isoformat(), "command": command,
        }, indent=2) + "\n", "utf-8")  # fmt: skip
    return session(live, session_id)


def stop(live: Settings, wait_s: float = 30.0) -> SessionView:
    """End the session that runs (what `carebot training stop` does), or the start still under way."""
    running = active(live)
    if running is None:
        raise TrainingError("no training session is running")
    if (training_root(live) / CURRENT).is_file():
        info = stop_current(live, wait_s)
        return session(live, info.id)
    pid = _read_json(training_root(live) / running.id / LAUNCH_FILE).get("pid")
    if isinstance(pid, int) and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
            if (training_root(live) / CURRENT).is_file():  # it came up meanwhile: stop it the usual way
                return stop(live, wait_s)
    return session(live, running.id)


def write_accounts(folder: Path, passwords: dict[str, str]) -> None:
    """The session's log-ins, readable by the desk's owner only; their presence says the session is up."""
    path = folder / ACCOUNTS_FILE
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(passwords, indent=2) + "\n", "utf-8")


def _database(folder: Path, session_id: str) -> Path:
    database = folder / "carebot.db"
    if not database.is_file() or not (folder / SESSION_FILE).is_file():
        raise TrainingError(f"the session {session_id} has no database")
    return database


def scorecard(live: Settings, session_id: str) -> Scorecard:
    """The session's scorecard, read from its own database (`carebot training report`)."""
    from bot.db import make_engine

    folder = session_dir(live, session_id)
    info = SessionInfo.load(folder)
    engine = make_engine(f"sqlite:///{_database(folder, session_id)}")
    try:
        return build_scorecard(
            engine, session=info.id, sla_minutes=live.sla_first_response_minutes, trainees=info.trainees,
            references=_read_json(folder / REFERENCES_FILE), posted=_read_json(folder / POSTED_FILE),
        )  # fmt: skip
    finally:
        engine.dispose()


def customer_texts(live: Settings, session_id: str) -> dict[str, str]:
    """Scenario line key → the customer's tweet, for showing each reply beside what it answers."""
    from bot.sandbox.replay import ReplayError, read_traffic

    try:
        return {line.key: line.text for line in read_traffic(session_dir(live, session_id) / "scenario.jsonl")}
    except (ReplayError, OSError):
        return {}


MAX_COMMENT = 1000


def review(live: Settings, session_id: str, ticket: int, *, verdict: str, comment: str, by: str) -> None:
    """The lead's review of a trainee's reply (`carebot training review --ticket N`): good or needs_work, with a
    comment, audited in the session's database as reply_reviewed; the newest counts."""
    from bot.db import make_engine
    from handoff import Handoff
    from handoff.errors import HandoffError

    if verdict not in ("good", "needs_work"):
        raise TrainingError("a review is either good or needs work")
    if len(comment) > MAX_COMMENT:
        raise TrainingError(f"a review's comment is at most {MAX_COMMENT:,} characters")
    card = scorecard(live, session_id)
    if not any(check.ticket_id == ticket for score in card.trainees for check in score.checks):
        raise TrainingError(f"no trainee answered ticket {ticket} in session {session_id}")
    engine = make_engine(f"sqlite:///{_database(session_dir(live, session_id), session_id)}")
    try:
        Handoff(engine).record_review(ticket, by, verdict=verdict, comment=comment)
    except HandoffError as exc:
        raise TrainingError(str(exc)) from None
    finally:
        engine.dispose()
