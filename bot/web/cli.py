"""`carebot web` (the web app) and `carebot users` (log-in accounts)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from bot.settings import Settings

users_app = typer.Typer(help="Log-in accounts of agents, editors and leads.", no_args_is_help=True)
console = Console(stderr=True)


def _settings() -> Settings:
    from bot.cli import STATE  # the root command's --settings option

    return STATE.settings


def _fail(message: str) -> typer.Exit:
    console.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)  # one line
    return typer.Exit(1)


def web_command(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default: CAREBOT_WEB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: CAREBOT_WEB_PORT).")] = None,
) -> None:
    """Run the web app: the agent console and its JSON API. Log in with an account from `carebot users add`."""
    import uvicorn

    from bot.ports import port_in_use
    from bot.web.app import create_app

    settings = _settings()
    host = host or settings.web_host
    port = port or settings.web_port
    problem = port_in_use(host, port, "CAREBOT_WEB_PORT")
    if problem:
        raise _fail(problem)
    app = create_app(settings)
    if not app.state.services.accounts.list_accounts():
        console.print("No accounts yet: create one with `carebot users add NAME --role agent --name … --initials …`")
    shown = f"[{host}]" if ":" in host else host
    console.print(f"carebot web on http://{shown}:{port}/ (Ctrl-C stops it)")
    # Open event streams (bot/web/events.py) end on their own only after minutes: a stop waits 5 s for them.
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False, server_header=False,
                timeout_graceful_shutdown=5)  # fmt: skip


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise _fail("no password on standard input")
        return password
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Log-in name: lower-case letters, digits, '.', '_', '-'.")],
    role: Annotated[str, typer.Option(help="agent, editor or lead.")],
    name: Annotated[str, typer.Option(help='The full name shown to colleagues, e.g. "Ann Brown".')],
    initials: Annotated[
        str | None, typer.Option(help="2-3 capital letters signing public replies (agents and leads).")
    ] = None,
    kind: Annotated[str, typer.Option(help="core or on_call (agents and leads).")] = "core",
    capacity: Annotated[
        int | None, typer.Option(help="Open tickets they may hold at once (default 5; a lead 0 until they choose).")
    ] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Create a log-in account; agents and leads also join the roster of the handoff queue.

    Everything is checked before the password is asked for; the account and its roster agent are created together
    or not at all."""
    from bot.db import make_engine, upgrade
    from bot.web.accounts import AccountError, AccountService

    if capacity is None:  # a lead runs the shift and takes tickets only by choice (a capacity of their own)
        capacity = 0 if role == "lead" else 5
    settings = _settings()
    url = settings.effective_database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        accounts = AccountService(engine, session_hours=settings.web_session_hours)
        try:
            accounts.check_new(username, role=role, display_name=name, initials=initials, kind=kind, capacity=capacity)
            account = accounts.create(
                username, _read_password(password_stdin), role=role, display_name=name, initials=initials,
                kind=kind, capacity=capacity,
            )  # fmt: skip
        except AccountError as exc:
            raise _fail(str(exc)) from exc
    finally:
        engine.dispose()
    signs = f", signs ^{account.initials}" if account.initials else ""
    console.print(f"Created {account.role} {account.username} ({account.display_name}{signs}).")


def _accounts_do(action: str, username: str, *args: object) -> None:
    from bot.db import make_engine, upgrade
    from bot.web.accounts import AccountError, AccountService

    settings = _settings()
    url = settings.effective_database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        service = AccountService(engine, session_hours=settings.web_session_hours)
        getattr(service, action)(username.strip().lower(), *args)
    except AccountError as exc:
        raise _fail(str(exc)) from exc
    finally:
        engine.dispose()


@users_app.command("set-password")
def users_set_password(
    username: Annotated[str, typer.Argument(help="The account's log-in name.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Give an account a new password; its open sessions end."""
    _accounts_do("set_password", username, _read_password(password_stdin))
    console.print(f"New password set for {username}; their sessions have ended.")


@users_app.command("disable")
def users_disable(username: Annotated[str, typer.Argument(help="The account's log-in name.")]) -> None:
    """Stop an account from logging in; its sessions end, and its roster agent goes offline, hands its tickets back
    to the queue and is given no more work."""
    _accounts_do("set_active", username, False)
    console.print(f"{username} can no longer log in; on the roster: offline, their tickets back in the queue.")


@users_app.command("enable")
def users_enable(username: Annotated[str, typer.Argument(help="The account's log-in name.")]) -> None:
    """Let a disabled account log in and be given tickets again (offline until set online)."""
    _accounts_do("set_active", username, True)
    console.print(f"{username} can log in again (offline until set online).")


@users_app.command("list")
def users_list() -> None:
    """The log-in accounts."""
    from bot.db import make_engine, upgrade
    from bot.web.accounts import AccountService

    settings = _settings()
    url = settings.effective_database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        accounts = AccountService(engine).list_accounts()
    finally:
        engine.dispose()
    table = Table("username", "name", "role", "initials", "roster agent", "active", "created")
    for account in accounts:
        table.add_row(
            account.username, account.display_name, account.role, account.initials or "",
            str(account.agent_id or ""), "yes" if account.active else "no", account.created_at.strftime("%Y-%m-%d"),
        )  # fmt: skip
    Console().print(table)
