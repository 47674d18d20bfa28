"""Runs the Rasa NLU server (`rasa run --enable-api`) from the Rasa environment, on loopback with a token.

`NluServer` starts it, waits until it has a model loaded and stops it cleanly (SIGTERM to its process
group, SIGKILL after a grace period). `carebot nlu serve`, `carebot up` and the tests all use it.

The token never appears on a command line: the server runs as `python -m bot.nlu.rasa_run` in the Rasa
environment, which reads it from its environment (see bot/nlu/rasa_run.py). Clients send it as Rasa's HTTP API
wants it, in the `token` query parameter, which is why the server listens on loopback only.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType

from bot.nlu.client import NluClient
from bot.nlu.rasa_run import TOKEN_VARIABLE
from bot.nlu.training import rasa_environment, rasa_executable
from bot.ports import port_in_use
from bot.processes import log_tail, stop_process_group
from bot.settings import PROJECT_ROOT, Settings

# Rasa's own (rasa/utils/tensorflow/environment.py sets TensorFlow's pools from them), then BLAS and OpenMP
THREAD_VARIABLES = (
    "TF_INTER_OP_PARALLELISM_THREADS", "TF_INTRA_OP_PARALLELISM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
)  # fmt: skip


class NluServerError(Exception):
    """The Rasa server did not start or stopped unexpectedly."""


class NluServer:
    def __init__(self, settings: Settings, model: Path, *, log_file: Path | None = None) -> None:
        self.settings = settings
        self.model = model
        self.log_file = log_file or settings.data_dir / "logs" / "rasa.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in_s: float | None = None

    @property
    def url(self) -> str:
        return self.settings.effective_nlu_url

    def client(self) -> NluClient:
        s = self.settings
        return NluClient(
            self.url, s.effective_nlu_token, timeout_s=s.nlu_timeout_s, retries=s.nlu_retries,
            max_chars=s.nlu_max_chars,
        )  # fmt: skip

    def start(self) -> None:
        if not self.model.is_file():
            raise NluServerError(f"model not found: {self.model} (run `carebot nlu train`)")
        with NluClient(self.url, self.settings.effective_nlu_token, timeout_s=1, retries=0) as probe:
            if probe.model_file() is not None:
                raise NluServerError(f"something already answers at {self.url}; choose another CAREBOT_NLU_PORT")
        busy = port_in_use(self.settings.nlu_host, self.settings.nlu_port, "CAREBOT_NLU_PORT")
        if busy:  # else Rasa loads for seconds, then dies with a traceback in its log
            raise NluServerError(busy)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                self.command(), env=self.environment(), cwd=self.settings.data_dir,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise

    def command(self) -> list[str]:
        """`rasa run` through the launcher in the Rasa environment; the auth token is not among the arguments."""
        python = rasa_executable(self.settings).with_name("python")
        return [
            str(python), "-m", "bot.nlu.rasa_run", "--enable-api",
            "--interface", self.settings.nlu_host,
            "--port", str(self.settings.nlu_port),
            "--model", str(self.model),
            "--response-timeout", "30",
        ]  # fmt: skip

    def environment(self) -> dict[str, str]:
        """Rasa's environment, with the launcher importable and the auth token for it to read, and its thread
        pools held to CAREBOT_NLU_THREADS: one parse is small, and idle pool threads spinning after each parse
        cost CPU per tweet while the worker and other servers share the cores."""
        env = rasa_environment(self.settings)
        env["PYTHONPATH"] = str(PROJECT_ROOT)
        env[TOKEN_VARIABLE] = self.settings.effective_nlu_token
        if self.settings.nlu_threads:
            for variable in THREAD_VARIABLES:
                env[variable] = str(self.settings.nlu_threads)
        return env

    def _wait_ready(self, started: float) -> None:
        assert self.process is not None
        deadline = started + self.settings.nlu_start_timeout_s
        with NluClient(self.url, self.settings.effective_nlu_token, timeout_s=2, retries=0) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise NluServerError(
                        f"Rasa exited with code {self.process.returncode} while starting. "
                        f"Last lines of {self.log_file}:\n{self.log_tail()}"
                    )
                if probe.is_ready():
                    self.started_in_s = time.monotonic() - started
                    return
                time.sleep(0.25)
        raise NluServerError(
            f"Rasa did not answer within {self.settings.nlu_start_timeout_s:.0f} s. "
            f"Last lines of {self.log_file}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_file, lines)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = 15.0) -> None:
        process, self.process = self.process, None
        stop_process_group(process, grace_s)

    def __enter__(self) -> NluServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
