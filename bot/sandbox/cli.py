"""`carebot sandbox`: run the sandbox X, replay recorded traffic into it, switch its faults.

`carebot sandbox --host H --port P` (no subcommand) runs the server, like `carebot sandbox serve`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.text import Text

from bot.ports import port_in_use
from bot.processes import until_stopped
from bot.sandbox.faults import ENDPOINTS, KINDS
from bot.sandbox.replay import ReplayError, TrafficLine, replay
from bot.settings import Settings

sandbox_app = typer.Typer(help="The sandbox X: a local X API for development, tests and agent training.")
console = Console(stderr=True)

HostOption = Annotated[str | None, typer.Option(help="Interface to listen on (default: CAREBOT_SANDBOX_HOST).")]
PortOption = Annotated[int | None, typer.Option(help="Port (default: CAREBOT_SANDBOX_PORT).")]
StoreOption = Annotated[Path | None, typer.Option(help="The sandbox's SQLite file (default: CAREBOT_SANDBOX_STORE).")]
UrlOption = Annotated[str | None, typer.Option("--url", help="The sandbox X's URL (default: from the settings).")]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _settings() -> Settings:
    from bot.cli import STATE  # bot.cli imports this module: look STATE up when a command runs

    return STATE.settings


def _fail(message: str) -> NoReturn:
    console.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)  # one line
    raise typer.Exit(1)


@until_stopped  # uvicorn stops on SIGTERM itself, then raises it again once the server has shut down
def _serve(host: str | None, port: int | None, store: Path | None) -> None:
    import uvicorn

    from bot.sandbox.server import create_app

    settings = _settings()
    host = host or settings.sandbox_host
    port = port or settings.sandbox_port
    store_path = store or settings.effective_sandbox_store
    problem = port_in_use(host, port, "CAREBOT_SANDBOX_PORT")
    if problem:
        _fail(problem)
    if host not in LOOPBACK:
        console.print(f"[yellow]warning:[/] the /sandbox/ endpoints have no authentication; {host} is not loopback")
    # Its own address is how carebot reaches it (settings.effective_sandbox_url); other names must be configured.
    allowed = [*settings.sandbox_allowed_hosts, host]
    try:
        app = create_app(
            store_path, settings.sandbox_account, allowed_hosts=allowed, tier=settings.x_tier,
            reply_restriction=settings.sandbox_reply_restriction,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        _fail(f"cannot open the sandbox store {store_path}: {exc}")
    shown = f"[{host}]" if ":" in host else host
    limits = "no rate limits" if settings.x_tier == "unmetered" else f"X's {settings.x_tier} rate limits"
    if not settings.sandbox_reply_restriction:
        limits += "; replies anywhere, as X allows enterprise apps"
    console.print(
        f"Sandbox X for @{settings.sandbox_account} at http://{shown}:{port} (store {store_path}; {limits})."
    )
    console.print("Open it in a browser to tweet as a customer. Press Ctrl-C to stop.")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


@sandbox_app.callback(invoke_without_command=True)
def sandbox_root(
    ctx: typer.Context, host: HostOption = None, port: PortOption = None, store: StoreOption = None
) -> None:
    """Without a subcommand: run the sandbox X (like `serve`)."""
    if ctx.invoked_subcommand is None:
        _serve(host, port, store)


@sandbox_app.command("serve")
def serve(host: HostOption = None, port: PortOption = None, store: StoreOption = None) -> None:
    """Run the sandbox X until Ctrl-C: the X API subset, the customer page at /, the /sandbox/ tools."""
    _serve(host, port, store)


def _url(url: str | None) -> str:
    return (url or _settings().effective_sandbox_url).rstrip("/")


def _call(method: str, url: str, payload: Any = None) -> Any:
    try:
        response = httpx.request(method, url, json=payload, timeout=10.0)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the sandbox X at {url} ({exc}); is `carebot sandbox serve` running?")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        _fail(f"the sandbox X refused: {detail}")
    return response.json()


@sandbox_app.command("replay")
def replay_command(
    file: Annotated[Path, typer.Argument(help="A traffic file (JSONL), e.g. training_data/traffic/kestrel_day.jsonl")],
    speed: Annotated[float, typer.Option(help="How many times faster than recorded.")] = 1.0,
    url: UrlOption = None,
    limit: Annotated[int | None, typer.Option(help="Stop after this many lines.")] = None,
    quiet: Annotated[bool, typer.Option(help="Do not print each tweet.")] = False,
) -> None:
    """Post a recorded day of customer tweets to the sandbox X at its time offsets divided by --speed."""

    def show(line: TrafficLine, tweet: dict[str, Any]) -> None:
        if not quiet:
            text = " ".join(line.text.split())
            console.print(Text(f"{line.at:8.1f}s @{line.user}: {text[:100]}"), highlight=False)

    try:
        report = replay(file, _url(url), speed, limit=limit, on_posted=show)
    except ReplayError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("replay interrupted")
    console.print(
        f"Posted {len(report.posted)} tweets in {report.elapsed_s:.1f} s "
        f"({report.threaded_under_reply} under our replies); refused {len(report.refused)}.",
        highlight=False,
    )
    for key, reason in report.refused:
        console.print(Text(f"  refused {key}: {reason}"), highlight=False)


@sandbox_app.command("fault")
def fault_command(
    endpoint: Annotated[str, typer.Argument(help=f"One of {', '.join(ENDPOINTS)}, or * for all.")],
    kind: Annotated[str, typer.Argument(help=f"One of {', '.join(KINDS)}.")],
    count: Annotated[int | None, typer.Option(help="Fail this many requests (default: until cleared).")] = None,
    hang_s: Annotated[float | None, typer.Option(help="For hang: seconds to wait before answering.")] = None,
    reset_in_s: Annotated[float | None, typer.Option(help="For 429 kinds: seconds until the announced reset.")] = None,
    url: UrlOption = None,
) -> None:
    """Switch on a fault in the running sandbox X."""
    payload: dict[str, Any] = {"endpoint": endpoint, "kind": kind, "count": count}
    if hang_s is not None:
        payload["hang_s"] = hang_s
    if reset_in_s is not None:
        payload["reset_in_s"] = reset_in_s
    fault = _call("POST", f"{_url(url)}/sandbox/faults", payload)["fault"]
    times = "until cleared" if fault["count"] is None else f"for {fault['count']} request(s)"
    console.print(f"Fault set: {fault['endpoint']} → {fault['kind']} {times}.", highlight=False)


@sandbox_app.command("faults")
def faults_command(
    clear: Annotated[bool, typer.Option("--clear", help="Clear every fault.")] = False,
    url: UrlOption = None,
) -> None:
    """List the faults in force (JSON), or clear them."""
    if clear:
        _call("DELETE", f"{_url(url)}/sandbox/faults")
        console.print("Faults cleared.")
        return
    typer.echo(json.dumps(_call("GET", f"{_url(url)}/sandbox/faults")["faults"], indent=2))


@sandbox_app.command("stats")
def stats_command(
    reset: Annotated[bool, typer.Option("--reset", help="Set the counters back to zero.")] = False,
    url: UrlOption = None,
) -> None:
    """The requests the sandbox X has received per endpoint (JSON)."""
    typer.echo(json.dumps(_call("DELETE" if reset else "GET", f"{_url(url)}/sandbox/stats"), indent=2))
