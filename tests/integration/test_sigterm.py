"""SIGTERM, as a process manager sends it to a service's main process, stops every long-running command within its
drain time with exit code 0, and no process of it is left: `carebot nlu serve` with its Rasa, `sandbox`, `worker`
and `web` (separate services on one data directory), and `carebot up` with its sandbox X, worker and web app.

`up` uses the NLU servers named in CAREBOT_NLU_URLS: the `nlu serve` above and the session's Rasa server, so only
one Rasa loads here. The NLU client spreads parses over those two and loses none when `nlu serve` stops mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.channel.models import worker_heartbeats
from bot.db import make_engine
from bot.health import check
from bot.nlu.client import NluClient, NluError
from bot.nlu.server import NluServer
from bot.nlu.service import free_port
from bot.processes import log_tail
from bot.settings import Settings

pytestmark = pytest.mark.rasa

START_TIMEOUT_S = 400.0
STOP_LIMIT_S = {"nlu": 20.0, "sandbox": 10.0, "worker": 25.0, "web": 10.0, "up": 60.0}


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Command:
    def __init__(self, name: str, args: list[str], settings: Settings, log: Path) -> None:
        self.name, self.settings, self.log = name, settings, log
        env = {
            **os.environ, "CAREBOT_DATA_DIR": str(settings.data_dir), "CAREBOT_NLU_TOKEN": settings.nlu_token or "",
            "CAREBOT_NLU_URLS": json.dumps(settings.nlu_urls),
            "CAREBOT_NLU_PORT": str(settings.nlu_port), "CAREBOT_SANDBOX_PORT": str(settings.sandbox_port),
            "CAREBOT_WEB_PORT": str(settings.web_port), "CAREBOT_X_POLL_INTERVAL_S": "0.5",
        }  # fmt: skip
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def failure(self, what: str) -> str:
        return f"{self.name}: {what}. Last lines of its output:\n{log_tail(self.log, 30)}"




def _heartbeat_pid(settings: Settings) -> int | None:
    engine = make_engine(settings.effective_database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(worker_heartbeats.c.pid)).scalar()
    finally:
        engine.dispose()


def _wait(commands: list[Command], ready: dict[str, tuple[str, ...]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = list(commands)
    while waiting:
        for command in list(waiting):
            assert command.process.poll() is None, command.failure(f"exited with {command.process.returncode}")
            if all(h.ok for h in check(command.settings, ready[command.name])) and (
                command.name != "worker" or _heartbeat_pid(command.settings) == command.process.pid
            ):  # two workers share the desk's database here: this one's own heartbeat
                waiting.remove(command)
        assert time.monotonic() < deadline, "; ".join(c.failure("not ready") for c in waiting)
        time.sleep(0.5)


def test_sigterm_stops_each_long_running_command_and_leaves_no_process(
    tmp_path: Path, rasa_settings: Settings, rasa_server: NluServer
) -> None:
    # One desk's data directory: `up` on one set of ports, the separate services on another. The separate worker
    # and web app start once `up` has loaded the FAQ, so nothing is embedded twice.
    data_dir = tmp_path / "desk"
    data_dir.mkdir(mode=0o700)
    (data_dir / "models").symlink_to(rasa_settings.models_dir)  # the session's trained model
    solo = Settings(
        data_dir=data_dir, nlu_token=rasa_settings.effective_nlu_token, nlu_port=free_port(),
        sandbox_port=free_port(), web_port=free_port(),
    )  # fmt: skip
    whole = solo.model_copy(update={
        "sandbox_port": free_port(), "web_port": free_port(), "nlu_urls": [solo.effective_nlu_url, rasa_server.url],
    })  # fmt: skip
    started = time.monotonic()
    up = Command("up", ["up"], whole, tmp_path / "up.log")
    commands = [up, Command("nlu", ["nlu", "serve"], solo, tmp_path / "nlu.log")]
    try:
        ready = {"nlu": ("nlu",), "sandbox": ("sandbox",), "worker": ("worker",), "web": ("web",),
                 "up": ("nlu", "worker", "web", "sandbox")}  # fmt: skip
        _wait(commands, ready)
        print(f"\nup and nlu serve ready in {time.monotonic() - started:.1f} s")
        services = [Command(name, [name], solo, tmp_path / f"{name}.log") for name in ("sandbox", "worker", "web")]
        commands += services
        _wait(services, ready)
        print(f"sandbox, worker and web ready in {time.monotonic() - started:.1f} s")

        # Two real Rasa servers: parses spread over both, and none lost when `nlu serve` stops mid-run.
        urls = [solo.effective_nlu_url, rasa_server.url]
        results: list[str] = []
        errors: list[NluError] = []
        halfway = threading.Event()
        with NluClient(urls, solo.nlu_token, timeout_s=10) as client:

            def parse_on() -> None:
                for i in range(40):
                    if i == 10:
                        halfway.set()
                    try:
                        results.append(client.parse(f"my broadband is down again, day {i}").intent)
                    except NluError as exc:
                        errors.append(exc)

            parser = threading.Thread(target=parse_on)
            parser.start()
            assert halfway.wait(120)
            assert all(replica.parses > 0 for replica in client.replicas)  # both served before the stop

            descendants = {c.name: _descendants(c.process.pid) for c in commands}
            assert len(descendants["up"]) >= 3 and descendants["nlu"], descendants  # sandbox, worker, web; Rasa
            stopped_at = time.monotonic()
            for command in commands:
                command.process.send_signal(signal.SIGTERM)  # the main process only, not its group
            parser.join(120)
        assert not errors and len(results) == 40, errors[:3]
        assert not client.replicas[0].up  # the stopped server was taken out
        print(f"parsed while stopping; {time.monotonic() - started:.1f} s")

        for command in commands:
            limit = STOP_LIMIT_S[command.name]
            try:
                code = command.process.wait(timeout=max(0.0, stopped_at + limit - time.monotonic()) + 1)
            except subprocess.TimeoutExpired:
                pytest.fail(command.failure(f"still running {limit:.0f} s after SIGTERM"))
            assert code == 0, command.failure(f"exit code {code} after SIGTERM")
            left = [pid for pid in descendants[command.name] if _alive(pid)]
            assert not left, command.failure(f"processes left after SIGTERM: {left}")
            with pytest.raises(ProcessLookupError):
                os.killpg(command.process.pid, 0)  # nothing left in its process group either
        print(f"all stopped; {time.monotonic() - started:.1f} s")
    finally:
        for command in commands:
            if command.process.poll() is None:
                for pid in _descendants(command.process.pid):  # children in sessions of their own
                    os.kill(pid, signal.SIGKILL)
                os.killpg(command.process.pid, signal.SIGKILL)
                command.process.wait()
