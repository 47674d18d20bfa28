"""A training session: a desk of its own under $DATA_DIR/training/SESSION (its SQLite database, its sandbox X,
its knowledge base index, logs) with the real worker, the real Rasa and a copy of the live desk's published FAQ,
while a scenario (a traffic file, optionally with reference replies) is replayed into its sandbox X.

Isolation is checked, not assumed: the session's settings are derived fresh (no X credentials, the X API is the
session's own sandbox X, a database and a sandbox store of its own) and `check_isolated` refuses anything that
could reach the real X, the live sandbox X or the live database; the child processes get those values in their
environment too, so no CAREBOT_ variable of the live desk can point them elsewhere.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.db import make_engine, upgrade
from bot.kb import kb_config
from bot.processes import ChildProcess, http_ready
from bot.sandbox.replay import ReplayError, TrafficLine, read_traffic, replay
from bot.settings import Settings, ensure_private_dir

TRAINING_DIR = "training"
CURRENT = "current"  # in $DATA_DIR/training: the running session's id
SESSION_FILE = "session.json"
REFERENCES_FILE = "references.json"  # scenario line key → its reference {"faq": slug, "reply": text}
POSTED_FILE = "posted.json"  # scenario line key → the tweet id the session's sandbox X gave it
BANNER = "TRAINING — a closed practice desk: nothing here reaches X or the live queue."
# The environment variables that would let a child process reach the real X: a session refuses to start with them.
X_VARIABLES = (
    "CAREBOT_X_BEARER_TOKEN", "CAREBOT_X_CONSUMER_KEY", "CAREBOT_X_CONSUMER_SECRET", "CAREBOT_X_ACCESS_TOKEN",
    "CAREBOT_X_ACCESS_TOKEN_SECRET",
)  # fmt: skip


class TrainingError(Exception):
    """A training session cannot start, stop or be read; the message says why."""


@dataclass(frozen=True)
class Reference:
    faq: str | None = None  # the FAQ entry's slug the right answer uses
    reply: str | None = None  # the reply an experienced agent gave


@dataclass(frozen=True)
class Scenario:
    name: str
    lines: list[TrafficLine]
    references: dict[str, Reference]
    traffic_text: str  # the traffic file without the references, as the sandbox replay reads it


def read_scenario(path: Path) -> Scenario:
    """A scenario: a traffic file (bot/sandbox/replay.py's format) whose lines may also carry
    `"reference": {"faq": "slug", "reply": "text"}`. TrainingError names the bad line."""
    try:
        raw_lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingError(f"cannot read the scenario {path}: {exc}") from exc
    references: dict[str, Reference] = {}
    plain: list[str] = []
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            plain.append("")
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TrainingError(f"{path}, line {number}: not valid JSON ({exc.msg})") from exc
        if isinstance(data, dict) and "reference" in data:
            reference = data.pop("reference")
            if not isinstance(reference, dict) or set(reference) - {"faq", "reply"} or not all(
                isinstance(value, str) and value.strip() for value in reference.values()
            ):
                raise TrainingError(f"{path}, line {number}: `reference` must be {{\"faq\": slug, \"reply\": text}}")
            references[str(data.get("key"))] = Reference(reference.get("faq"), reference.get("reply"))
        plain.append(json.dumps(data, ensure_ascii=False))
    traffic_text = "\n".join(plain) + "\n"
    lines = _read_traffic_text(traffic_text, path)
    return Scenario(path.stem, lines, references, traffic_text)


def _read_traffic_text(text: str, source: Path) -> list[TrafficLine]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / source.name
        copy.write_text(text, "utf-8")
        try:
            return read_traffic(copy)
        except ReplayError as exc:
            raise TrainingError(str(exc).replace(str(copy), str(source))) from exc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def training_root(live: Settings) -> Path:
    return live.data_dir / TRAINING_DIR


def session_settings(live: Settings, session_dir: Path, *, sandbox_port: int, web_port: int) -> Settings:
    """The session's settings: the live desk's NLU and tuning, but its own data directory, SQLite database,
    sandbox X (store and port), knowledge base index and web port, no X credentials, and the TRAINING banner."""
    keep = {
        name: getattr(live, name) for name in (
            "training_data_dir", "rasa_venv", "nlu_host", "nlu_timeout_s", "nlu_retries", "nlu_max_chars",
            "kb_embedding_model", "kb_duplicate_threshold", "kb_exact_limit", "kb_embedding_threads",
            "kb_embedding_backend",
            "sandbox_account", "worker_batch_size", "sla_first_response_minutes", "web_session_hours",
        )
    }  # fmt: skip
    return Settings(
        **keep,
        data_dir=session_dir,
        database_url=f"sqlite:///{session_dir / 'carebot.db'}",
        sandbox_host="127.0.0.1",
        sandbox_port=sandbox_port,
        sandbox_store=session_dir / "sandbox-x.db",
        x_api_url=f"http://127.0.0.1:{sandbox_port}",
        x_poll_interval_s=1.0,
        kb_index_dir=session_dir / "kb-index",
        kb_onnx_dir=kb_config(live).onnx_dir,  # the model's export only: no customer text, shared read-mostly
        web_host="127.0.0.1",
        web_port=web_port,
        web_banner=BANNER,
    )


def check_isolated(session: Settings, live: Settings, environ: dict[str, str] | None = None) -> None:
    """Refuse (TrainingError) a session that could reach the real X, the live sandbox X or the live database."""
    environ = dict(os.environ) if environ is None else environ
    problems = []
    if session.x_credentials_set or session.x_consumer_key is not None:
        problems.append("the session has X credentials")
    if [name for name in X_VARIABLES if environ.get(name)]:
        problems.append("X credentials are set in the environment (CAREBOT_X_*); start training without them")
    if session.effective_x_api_url != session.effective_sandbox_url:
        problems.append(f"its X API {session.effective_x_api_url} is not its own sandbox X")
    if session.effective_sandbox_url == live.effective_sandbox_url and not live.x_credentials_set:
        problems.append("its sandbox X is on the live sandbox X's port")
    if session.effective_sandbox_store.resolve() == live.effective_sandbox_store.resolve():
        problems.append("its sandbox X store is the live one")
    url = session.effective_database_url
    if not url.startswith("sqlite:///") or url == live.effective_database_url:
        problems.append("its database is not a SQLite file of its own")
    elif not Path(url.removeprefix("sqlite:///")).resolve().is_relative_to(session.data_dir.resolve()):
        problems.append("its database is outside its data directory")
    if session.data_dir.resolve() == live.data_dir.resolve():
        problems.append("its data directory is the live one")
    if problems:
        raise TrainingError("the training session is not isolated from the live desk: " + "; ".join(problems))


def child_environment(session: Settings) -> dict[str, str]:
    """The values a child process must take from the session whatever the live desk's environment says."""
    return {
        "CAREBOT_DATA_DIR": str(session.data_dir),
        "CAREBOT_DATABASE_URL": session.effective_database_url,
        "CAREBOT_SANDBOX_HOST": session.sandbox_host,
        "CAREBOT_SANDBOX_PORT": str(session.sandbox_port),
        "CAREBOT_SANDBOX_STORE": str(session.effective_sandbox_store),
        "CAREBOT_X_API_URL": session.effective_x_api_url,
        "CAREBOT_KB_INDEX_DIR": str(session.kb_index_dir),
        "CAREBOT_KB_ONNX_DIR": str(kb_config(session).onnx_dir),
        "CAREBOT_WEB_HOST": session.web_host,
        "CAREBOT_WEB_PORT": str(session.web_port),
        "CAREBOT_WEB_BANNER": session.web_banner or BANNER,
        "CAREBOT_NLU_URL": session.effective_nlu_url,
        "CAREBOT_NLU_TOKEN": session.effective_nlu_token,
    }


def write_settings_file(session: Settings, path: Path) -> Path:
    lines = [f"{name}={value}" for name, value in child_environment(session).items()]
    path.touch(mode=0o600, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def copy_published_faq(live: Settings, session: Settings) -> int:
    """The live desk's published FAQ entries (their published versions), read from the live database without
    writing to it, imported into the session's knowledge base; returns how many."""
    from sqlalchemy import select

    from bot.kb import open_knowledge_base
    from knowledge_base.models import entries, entry_versions
    from knowledge_base.service import EntryContent, EntryRecord

    live_url = live.effective_database_url
    if live_url.startswith("sqlite:///") and not Path(live_url.removeprefix("sqlite:///")).is_file():
        return 0
    engine = make_engine(live_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(entry_versions)
                .join(entries, entries.c.id == entry_versions.c.entry_id)
                .where(entry_versions.c.version == entries.c.published_version)
                .order_by(entries.c.id)
            ).all()
            conn.rollback()
    finally:
        engine.dispose()
    records = [
        EntryRecord(EntryContent(row.slug, row.question, row.answer, tuple(row.paraphrases), tuple(row.tags),
                                 row.language), "published")
        for row in rows
    ]  # fmt: skip
    if not records:
        return 0
    with open_knowledge_base(session) as kb:
        kb.service.import_entries(records, author="training", source="the live desk", check_duplicates=False)
        kb.searcher.save()
    return len(records)


@dataclass
class SessionInfo:
    id: str
    scenario: str
    speed: float
    started_at: str
    sandbox_url: str
    web_url: str
    pid: int
    trainees: list[str] = field(default_factory=list)
    stopped_at: str | None = None

    @classmethod
    def load(cls, session_dir: Path) -> SessionInfo:
        try:
            return cls(**json.loads((session_dir / SESSION_FILE).read_text("utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise TrainingError(f"no training session in {session_dir}") from exc

    def save(self, session_dir: Path) -> None:
        (session_dir / SESSION_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", "utf-8")


def session_dir(live: Settings, session_id: str) -> Path:
    if not session_id or "/" in session_id or session_id.startswith("."):
        raise TrainingError(f"{session_id!r} is not a training session id")
    folder = training_root(live) / session_id
    if not (folder / SESSION_FILE).is_file():
        known = sorted(p.name for p in training_root(live).glob("*") if (p / SESSION_FILE).is_file())
        raise TrainingError(f"no training session {session_id!r}" + (f"; known: {', '.join(known)}" if known else ""))
    return folder


def create_accounts(session: Settings, trainees: list[str], lead: str = "lead") -> dict[str, str]:
    """The session's log-in accounts, each with a new password: the trainees (agents, online, initials TA, TB, …)
    and a lead. Returns username → password."""
    from bot.web.accounts import AccountService
    from handoff.service import Handoff

    engine = make_engine(session.effective_database_url)
    passwords: dict[str, str] = {}
    try:
        accounts = AccountService(engine, session_hours=session.web_session_hours)
        handoff = Handoff(engine, sla_minutes=session.sla_first_response_minutes)
        people = [(name, "agent", f"T{chr(ord('A') + n)}") for n, name in enumerate(trainees)]
        for username, role, initials in [*people, (lead, "lead", "TL")]:
            password = "-".join(secrets.token_hex(2) for _ in range(3))
            agent = handoff.add_agent(username, f"Trainee {username}" if role == "agent" else "Training lead",
                                      initials, kind="core")  # fmt: skip
            if role == "agent":
                handoff.set_status(int(agent.id), "online", by="training")
            accounts.create(username, password, role=role, display_name=username, initials=initials,
                            agent_id=int(agent.id))  # fmt: skip
            passwords[username] = password
    finally:
        engine.dispose()
    return passwords


@dataclass
class RunningSession:
    info: SessionInfo
    directory: Path
    settings: Settings
    passwords: dict[str, str]
    replay_thread: threading.Thread
    children: list[ChildProcess]

    def problems(self) -> list[str]:
        return [f"{child.name} stopped; last lines of {child.log_file}:\n{child.log_tail()}"
                for child in self.children if not child.is_running()]  # fmt: skip


@contextmanager
def run_session(
    live: Settings,
    scenario_file: Path,
    *,
    speed: float = 1.0,
    trainees: list[str] | None = None,
    limit: int | None = None,
    with_web: bool = True,
    nlu: tuple[str, str] | None = None,
    session_id: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Iterator[RunningSession]:
    """Start a training session and keep it running for the block: its sandbox X, the worker and the web app as
    child processes, and the scenario's replay in a thread. `nlu` is (url, token) of the Rasa server to use
    (default: the live desk's); `session_id` names the session (default: the time and the scenario's name). On
    leaving, everything stops and the session is marked stopped."""
    if not speed > 0:
        raise TrainingError("the speed must be greater than 0")
    scenario = read_scenario(scenario_file)
    trainees = trainees or ["trainee1", "trainee2"]
    if len(set(trainees)) != len(trainees) or len(trainees) > 20:
        raise TrainingError("trainee names must be different, at most 20")
    started = datetime.now(UTC)
    session_id = session_id or f"{started:%Y%m%d-%H%M%S}-{scenario.name}"
    if "/" in session_id or session_id.startswith(".") or len(session_id) > 120:
        raise TrainingError(f"{session_id!r} is not a training session id")
    root = ensure_private_dir(training_root(live))
    if (root / session_id / SESSION_FILE).exists():
        raise TrainingError(f"the training session {session_id} exists already")
    if (root / CURRENT).is_file():
        current = (root / CURRENT).read_text("utf-8").strip()
        raise TrainingError(f"the training session {current} is running; `carebot training stop` ends it")
    folder = root / session_id
    settings = session_settings(live, folder, sandbox_port=free_port(), web_port=free_port())
    url, token = nlu or (live.effective_nlu_url, live.effective_nlu_token)
    settings = settings.model_copy(update={"nlu_url": url, "nlu_token": token})
    check_isolated(settings, live)
    ensure_private_dir(folder)
    upgrade(settings.effective_database_url)
    say(f"Copied {copy_published_faq(live, settings)} published FAQ entries from the live desk.")
    passwords = create_accounts(settings, trainees)
    (folder / REFERENCES_FILE).write_text(
        json.dumps({key: asdict(ref) for key, ref in scenario.references.items()}, indent=2), "utf-8"
    )
    traffic = folder / "scenario.jsonl"
    traffic.write_text(scenario.traffic_text, "utf-8")
    settings_file = write_settings_file(settings, folder / "settings.env")
    env = child_environment(settings)
    info = SessionInfo(
        session_id, scenario_file.name, speed, started.isoformat(), settings.effective_sandbox_url,
        f"http://127.0.0.1:{settings.web_port}", os.getpid(), trainees,
    )  # fmt: skip
    info.save(folder)
    (root / CURRENT).write_text(session_id + "\n", "utf-8")
    logs = folder / "logs"
    stop = threading.Event()
    with ExitStack() as stack:
        stack.callback(_mark_stopped, root, folder, info)
        children: list[ChildProcess] = []

        def start(child: ChildProcess, timeout_s: float = 120.0) -> None:
            took = child.start(timeout_s)
            stack.callback(child.stop)
            children.append(child)
            say(f"{child.name} ready in {took:.1f} s (log: {child.log_file}).")

        start(ChildProcess("the training sandbox X", ["sandbox", "serve"], logs / "sandbox.log", env=env,
                           settings_file=settings_file, ready=http_ready(settings.effective_sandbox_url + "/")))
        start(ChildProcess("the training worker", ["worker"], logs / "worker.log", env=env, settings_file=settings_file,
                           ready=_worker_ready(settings, started)), timeout_s=180.0)  # fmt: skip
        if with_web:
            start(ChildProcess("the training web app", ["web"], logs / "web.log", env=env, settings_file=settings_file,
                               ready=http_ready(info.web_url + "/login")))  # fmt: skip
        posted: dict[str, str] = {}

        def on_posted(line: TrafficLine, tweet: dict[str, Any]) -> None:
            posted[line.key] = str(tweet["id"])
            (folder / POSTED_FILE).write_text(json.dumps(posted, indent=2), "utf-8")

        def pause(seconds: float) -> None:
            if stop.wait(seconds):
                raise _Stopped

        def drive() -> None:
            try:
                replay(traffic, settings.effective_sandbox_url, speed, limit=limit, on_posted=on_posted, sleep=pause)
            except (ReplayError, _Stopped):
                pass

        thread = threading.Thread(target=drive, name="training-replay", daemon=True)
        thread.start()
        stack.callback(thread.join, 5)
        stack.callback(stop.set)
        yield RunningSession(info, folder, settings, passwords, thread, children)


class _Stopped(Exception):
    """The session stops while the replay waits for its next tweet."""


def _worker_ready(settings: Settings, launched: datetime) -> Callable[[], bool]:
    engine_holder: list[Any] = []

    def probe() -> bool:
        from bot.channel.worker import last_heartbeat

        if not engine_holder:
            engine_holder.append(make_engine(settings.effective_database_url))
        seen = last_heartbeat(engine_holder[0])
        ready = seen is not None and seen >= launched
        if ready:
            engine_holder.pop().dispose()
        return ready

    return probe


def _mark_stopped(root: Path, folder: Path, info: SessionInfo) -> None:
    info.stopped_at = datetime.now(UTC).isoformat()
    info.save(folder)
    current = root / CURRENT
    if current.is_file() and current.read_text("utf-8").strip() == info.id:
        current.unlink()


def stop_current(live: Settings, wait_s: float = 30.0) -> SessionInfo:
    """End the running session: SIGTERM to the `carebot training start` that runs it (it stops its processes and
    marks the session stopped); a session whose process is gone is marked stopped here. Its data stays."""
    import signal
    import time

    root = training_root(live)
    current = root / CURRENT
    if not current.is_file():
        raise TrainingError("no training session is running")
    session_id = current.read_text("utf-8").strip()
    folder = session_dir(live, session_id)
    info = SessionInfo.load(folder)
    try:
        os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while current.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
    except ProcessLookupError:
        pass
    info = SessionInfo.load(folder)
    if info.stopped_at is None or current.is_file():
        _mark_stopped(root, folder, info)
    return SessionInfo.load(folder)
