"""carebot's own child processes for `carebot up`, and how every long-running command stops.

Each child runs as `python -m bot …` in its own process group with its output in a log file under $DATA_DIR/logs;
`ChildProcess` starts one, waits until it is ready (an HTTP answer, or simply still alive) and stops it
(SIGTERM to its group, SIGKILL after a grace period).

`until_stopped` makes a command stop on SIGTERM (what systemd and other process managers send) exactly as on
Ctrl-C: KeyboardInterrupt in the main thread, so the same clean-up runs and its child processes stop with it;
either way the command then ends with exit code 0.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import ParamSpec

import httpx

P = ParamSpec("P")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread, as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _interrupt)


def until_stopped(command: Callable[P, None]) -> Callable[P, None]:
    """A long-running command that SIGTERM stops as Ctrl-C does; a stop by either is a normal end (exit code 0)."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        interrupt_on_sigterm()
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            pass

    return run


def stop_process_group(process: subprocess.Popen[bytes] | None, grace_s: float = 10.0) -> None:
    """SIGTERM to the process's group (it was started with start_new_session), SIGKILL after `grace_s`."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def log_tail(log_file: Path, lines: int = 15) -> str:
    """The last lines of a process's log file, for an error message."""
    try:
        with open(log_file, errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip()
    except OSError:
        return "(no log)"


class ChildProcessError(Exception):
    """A carebot process did not start or stopped unexpectedly."""


def http_ready(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    return probe


class ChildProcess:
    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_file: Path,
        *,
        ready: Callable[[], bool] | None = None,
        settings_file: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        prefix = ["--settings", str(settings_file)] if settings_file else []
        self.command = [sys.executable, "-m", "bot", *prefix, *args]
        self.log_file = log_file
        self.ready = ready
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> float:
        """Start the process and wait until it is ready; returns how long that took in seconds."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**os.environ, **(self.env or {})},
            )  # fmt: skip
        deadline = started + timeout_s
        try:
            while True:
                if self.process.poll() is not None:
                    raise ChildProcessError(
                        f"{self.name} exited with code {self.process.returncode} while starting. "
                        f"Last lines of {self.log_file}:\n{self.log_tail()}"
                    )
                if self.ready is None or self.ready():
                    return time.monotonic() - started
                if time.monotonic() > deadline:
                    raise ChildProcessError(f"{self.name} was not ready within {timeout_s:.0f} s; see {self.log_file}")
                time.sleep(0.2)
        except BaseException:  # a stop (Ctrl-C, SIGTERM) while it starts takes it down too
            self.stop()
            raise

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_file, lines)

    def stop(self, grace_s: float = 10.0) -> None:
        process, self.process = self.process, None
        stop_process_group(process, grace_s)
