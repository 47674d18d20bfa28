"""`carebot up`: every carebot service on one machine, stopped together by one Ctrl-C or SIGTERM.

Starts the Rasa NLU server (unless CAREBOT_NLU_URLS names servers of their own), the sandbox X (when no X
credentials are set), the worker and the web app, and with --demo the replay of recorded traffic into the
sandbox. While they run it prints what the worker decides for each tweet, so a newcomer sees the bot answer and
escalate.
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.text import Text
from sqlalchemy import Engine, select

from bot.channel.models import inbound_tweets, outbox
from bot.db import make_engine, upgrade
from bot.nlu.server import NluServer
from bot.processes import ChildProcess, ChildProcessError, http_ready
from bot.settings import Settings, SettingsError
from handoff.models import messages as handoff_messages

DEMO_TRAFFIC = "traffic/kestrel_day.jsonl"
DEMO_SPEED = 20.0
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def one_line(text: str, limit: int = 120) -> str:
    """Customer text for a terminal: on one line, without control or direction characters, shortened."""
    flat = _UNPRINTABLE.sub("·", text.replace("\r\n", " ").replace("\n", " "))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class DecisionFeed:
    """Prints each tweet the worker has triaged since the last call, with its band and the bot's reply."""

    def __init__(self, engine: Engine, console: Console) -> None:
        self.engine = engine
        self.console = console
        self.seen: set[str] = set()

    def poll(self) -> int:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    inbound_tweets.c.tweet_id, inbound_tweets.c.author_username, inbound_tweets.c.text,
                    inbound_tweets.c.band, inbound_tweets.c.source, inbound_tweets.c.ignore_reason,
                    outbox.c.text.label("reply"), handoff_messages.c.ticket_id,
                )  # fmt: skip
                .outerjoin(outbox, outbox.c.target_tweet_id == inbound_tweets.c.tweet_id)
                .outerjoin(handoff_messages, handoff_messages.c.tweet_id == inbound_tweets.c.tweet_id)
                .where(inbound_tweets.c.state == "done")
                .order_by(inbound_tweets.c.triaged_at.desc())
                .limit(200)
            ).all()
        fresh = [row for row in reversed(rows) if row.tweet_id not in self.seen]
        colours = {"auto": "green", "approve": "yellow", "human": "magenta", "ignore": "dim"}
        for row in fresh:
            self.seen.add(row.tweet_id)
            label, colour = row.band or "?", colours.get(row.band or "", "")
            if row.ticket_id is not None and row.band not in ("human", "approve"):
                label, colour = "joined", "magenta"  # a follow-up that joined a person's ticket, not dropped
            where = f" → #{row.ticket_id}" if row.ticket_id is not None else ""
            why = f" ({row.ignore_reason.replace('_', ' ')})" if label == "ignore" and row.ignore_reason else ""
            line = Text.assemble(
                (f"{label:>7} ", colour),
                (f"@{one_line(row.author_username or '?', 20)}: ", "bold"),
                one_line(row.text, 90),
                (f"{where}{why}", "dim"),
            )
            self.console.print(line, highlight=False)
            if row.reply:
                self.console.print(Text(f"          ↳ {one_line(row.reply, 110)}", style="cyan"), highlight=False)
        return len(fresh)


# The demo's people: a small shift of core and on-call agents, an FAQ editor and a team lead.
DEMO_PEOPLE = (
    # username, role, name, initials, kind, status
    ("ann", "agent", "Ann Brown", "AB", "core", "online"),
    ("raj", "agent", "Raj Patel", "RP", "core", "online"),
    ("olu", "agent", "Olu Adeyemi", "OA", "on_call", "offline"),
    ("eve", "editor", "Eve Marsh", None, None, None),
    ("liam", "lead", "Liam Chen", "LC", "core", "offline"),  # a lead takes tickets only when they choose to
)


DEMO_PASSWORDS = "demo-passwords"  # in the data directory (0600): the demo accounts' passwords, kept across starts
DEMO_REPLAYED = "demo-replayed"  # in the data directory: the recorded day was replayed into this sandbox X


def _demo_passwords(settings: Settings) -> dict[str, str]:
    path = settings.data_dir / DEMO_PASSWORDS
    if not path.is_file():
        return {}
    pairs = (line.split(" ", 1) for line in path.read_text("utf-8").splitlines() if " " in line)
    return {username: password for username, password in pairs}


def _save_demo_passwords(settings: Settings, passwords: dict[str, str]) -> None:
    path = settings.prepare_data_dir() / DEMO_PASSWORDS
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("".join(f"{username} {password}\n" for username, password in passwords.items()), "utf-8")


def ensure_demo_accounts(settings: Settings) -> list[tuple[str, str, str, str]]:
    """Create the demo's accounts, with the same passwords on every start (kept in the data directory, 0600);
    returns (username, password, role, name) to print. Only `carebot up --demo` calls this: a real desk creates
    accounts with `carebot users add`."""
    import secrets

    from bot.web.accounts import AccountService
    from handoff.service import Handoff

    engine = make_engine(settings.effective_database_url)
    created = []
    known = _demo_passwords(settings)
    try:
        accounts = AccountService(engine, session_hours=settings.web_session_hours)
        handoff = Handoff(engine, sla_minutes=settings.sla_first_response_minutes)
        for username, role, name, initials, kind, status in DEMO_PEOPLE:
            password = known.get(username) or "-".join(secrets.token_hex(2) for _ in range(3))
            if accounts.by_username(username) is not None:
                if username not in known:  # an account from before passwords were kept: give it one
                    accounts.set_password(username, password)
            else:
                agent_id = None
                if initials:
                    agent = handoff.agent_by_username(username) or handoff.add_agent(
                        username, name, initials, kind=kind or "core"
                    )
                    agent_id = int(agent.id)
                    if status:
                        handoff.set_status(agent_id, status, by="demo")
                accounts.create(username, password, role=role, display_name=name, initials=initials, agent_id=agent_id)
            created.append((username, password, role, name))
            known[username] = password
    finally:
        engine.dispose()
    _save_demo_passwords(settings, known)
    return created


def reset_demo(settings: Settings) -> list[Path]:
    """Delete the demo's state so the next `make demo` starts afresh: the SQLite database, the sandbox X's
    store, the kept passwords, the replay marker and the logs. The virtual environments, the trained NLU model
    and the embedding caches stay. Refused for a PostgreSQL database or a real X: those are not a demo's."""
    if settings.database_url and not settings.database_url.startswith("sqlite"):
        raise SettingsError("CAREBOT_DATABASE_URL names a server database: carebot only resets a demo's SQLite.")
    if settings.x_credentials_set or settings.x_api_url:
        raise SettingsError("X credentials or an X API URL are set: this is not a demo on the sandbox X.")
    database = Path(settings.effective_database_url.removeprefix("sqlite:///"))
    store = settings.effective_sandbox_store
    targets = [database, Path(f"{database}-wal"), Path(f"{database}-shm"), store, Path(f"{store}-wal"),
               Path(f"{store}-shm"), settings.data_dir / DEMO_PASSWORDS, settings.data_dir / DEMO_REPLAYED]  # fmt: skip
    removed = [path for path in targets if path.is_file()]
    for path in removed:
        path.unlink()
    logs = settings.data_dir / "logs"
    if logs.is_dir():
        for log in sorted(logs.glob("*.log")):
            log.unlink()
            removed.append(log)
    return removed


def web_available() -> bool:
    return importlib.util.find_spec("bot.web.app") is not None


def run_up(
    settings: Settings,
    console: Console,
    *,
    ensure_model: Callable[[Settings], Path],
    settings_file: Path | None = None,
    demo: bool = False,
    demo_speed: float = DEMO_SPEED,
) -> None:
    settings.check_x_user_context()  # app-only X credentials: the worker would never start
    upgrade(settings.effective_database_url)
    logs = settings.data_dir / "logs"
    use_sandbox = not settings.x_credentials_set and not settings.x_api_url
    with ExitStack() as stack:
        server: NluServer | None = None
        if settings.nlu_urls:  # NLU servers of their own (`carebot nlu serve` elsewhere): none started here
            console.print(f"Using the NLU servers at {', '.join(settings.nlu_urls)} (CAREBOT_NLU_URLS).")
        else:
            server = NluServer(settings, ensure_model(settings))
            stack.callback(server.stop)  # before it starts: a stop while Rasa loads takes it down too
            with console.status("Starting Rasa (loading TensorFlow and the model)…"):
                server.start()
            console.print(f"[green]NLU server ready[/] at {server.url} in {server.started_in_s:.1f} s.")

        with console.status("Opening the knowledge base (the first time: embedding the default FAQ)…"):
            from bot.desk import load_default_faq
            from bot.kb import open_knowledge_base

            with open_knowledge_base(settings) as kb:
                loaded = load_default_faq(kb, settings.training_data_dir / "faq.yml")
        if loaded:
            console.print(f"Loaded the default FAQ: {loaded} entries.")

        children: list[ChildProcess] = []

        def start(child: ChildProcess, what: str, timeout_s: float = 120.0) -> None:
            stack.callback(child.stop)
            with console.status(f"Starting {what}…"):
                took = child.start(timeout_s)
            children.append(child)
            console.print(f"[green]{what} ready[/] in {took:.1f} s (log: {child.log_file}).")

        if use_sandbox:
            sandbox = ChildProcess(
                "sandbox X", ["sandbox", "serve"], logs / "sandbox.log", settings_file=settings_file,
                ready=http_ready(settings.effective_sandbox_url + "/"),
            )  # fmt: skip
            start(sandbox, f"the sandbox X at {settings.effective_sandbox_url}")
        engine = make_engine(settings.effective_database_url)
        stack.callback(engine.dispose)
        launched = datetime.now(UTC)
        start(
            ChildProcess(
                "worker", ["worker"], logs / "worker.log", settings_file=settings_file,
                ready=lambda: _heartbeat_since(engine, launched),
            ),  # fmt: skip
            "the worker",
            timeout_s=180.0,
        )
        web_url = f"http://{settings.web_host}:{settings.web_port}"
        people = ensure_demo_accounts(settings) if demo and web_available() else []
        if web_available():
            start(
                ChildProcess(
                    "web app", ["web"], logs / "web.log", settings_file=settings_file,
                    ready=http_ready(web_url + "/login"),
                ),  # fmt: skip
                f"the web app at {web_url}",
            )
        replayed = settings.data_dir / DEMO_REPLAYED
        if demo and use_sandbox and replayed.is_file():
            console.print(
                f"The recorded day was replayed on an earlier start ({replayed.read_text('utf-8').strip()}); not "
                "again, which would file every ticket twice. `make demo-reset` starts the demo afresh."
            )
        elif demo and use_sandbox:
            traffic = settings.training_data_dir / DEMO_TRAFFIC
            replay = ChildProcess(
                "replay", ["sandbox", "replay", str(traffic), "--speed", str(demo_speed)], logs / "replay.log",
                settings_file=settings_file,
            )  # fmt: skip
            stack.callback(replay.stop)
            replay.start()
            replayed.write_text(f"{traffic.name}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n", "utf-8")
            console.print(f"Replaying {traffic.name} into the sandbox X at {demo_speed:g}x speed.")
        console.print()
        if use_sandbox:
            console.print(f"  The sandbox X (tweet as a customer): {settings.effective_sandbox_url}/")
        if web_available():
            console.print(f"  The agent console:                   {web_url}/")
        for username, password, role, name in people:
            console.print(f"    log in as {username:<5} password {password}  ({role}, {name})")
        console.print("  Press Ctrl-C to stop everything.\n")

        feed = DecisionFeed(engine, console)
        try:
            while True:
                feed.poll()
                if server is not None and not server.is_running():
                    raise ChildProcessError(
                        f"Rasa stopped unexpectedly. Last lines of {server.log_file}:\n{server.log_tail()}"
                    )
                for child in children:
                    if not child.is_running():
                        raise ChildProcessError(
                            f"{child.name} stopped unexpectedly. Last lines of {child.log_file}:\n{child.log_tail()}"
                        )
                time.sleep(1.0)
        except KeyboardInterrupt:
            console.print("Stopping…")


def _heartbeat_since(engine: Engine, launched: datetime) -> bool:
    from bot.channel.worker import last_heartbeat

    seen = last_heartbeat(engine)
    return seen is not None and seen >= launched
