"""Trains the Rasa NLU model in the Rasa environment, once per content of the training data and config.

The model file is named by a hash of everything that shapes it (the NLU data files, the pipeline
config and the Rasa lock file), so an unchanged model is found again instead of retrained.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.settings import PROJECT_ROOT, Settings

RASA_LOCK = PROJECT_ROOT / "requirements" / "rasa.lock"
_EPOCH_PROGRESS = re.compile(r"Epochs:\s+(\d+)%")


class NluTrainingError(Exception):
    """Training the NLU model failed."""


@dataclass(frozen=True)
class TrainingInputs:
    config: Path
    nlu_files: tuple[Path, ...]
    domain: Path | None

    @classmethod
    def from_dir(cls, training_data_dir: Path) -> TrainingInputs:
        config = training_data_dir / "config.yml"
        nlu_dir = training_data_dir / "nlu"
        if not config.is_file():
            raise NluTrainingError(f"pipeline config not found: {config}")
        nlu_files = tuple(sorted(nlu_dir.glob("*.yml")))
        if not nlu_files:
            raise NluTrainingError(f"no NLU training files (*.yml) in {nlu_dir}")
        domain = training_data_dir / "domain.yml"
        return cls(config=config, nlu_files=nlu_files, domain=domain if domain.is_file() else None)

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        parts = [self.config, *self.nlu_files] + ([RASA_LOCK] if RASA_LOCK.is_file() else [])
        for path in parts:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()[:20]


def rasa_executable(settings: Settings) -> Path:
    rasa = settings.rasa_venv / "bin" / "rasa"
    if not rasa.exists():
        raise NluTrainingError(f"Rasa is not installed at {settings.rasa_venv} (run `make setup`)")
    return rasa


def rasa_environment(settings: Settings) -> dict[str, str]:
    """The environment Rasa runs in: quiet, no telemetry, its caches in carebot's data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREBOT_")}
    env.update(
        RASA_TELEMETRY_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="2",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        PYTHONWARNINGS="ignore",
        RASA_CACHE_DIRECTORY=str(settings.data_dir / "rasa-cache"),
    )
    return env


def model_path_for(settings: Settings, inputs: TrainingInputs) -> Path:
    return settings.models_dir / f"nlu-{inputs.content_hash()}.tar.gz"


def train(
    settings: Settings,
    inputs: TrainingInputs | None = None,
    *,
    force: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[Path, bool]:
    """Train (or find) the model for these inputs. Returns (model path, whether it was trained now).

    on_progress receives the training progress in percent, parsed from Rasa's epoch counter.
    """
    inputs = inputs or TrainingInputs.from_dir(settings.training_data_dir)
    target = model_path_for(settings, inputs)
    if target.is_file() and not force:
        return target, False
    rasa = rasa_executable(settings)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.data_dir, prefix="nlu-train-") as work:
        work_dir = Path(work)
        nlu_dir = work_dir / "nlu"
        nlu_dir.mkdir()
        for path in inputs.nlu_files:
            (nlu_dir / path.name).write_bytes(path.read_bytes())
        command = [
            str(rasa), "train", "nlu",
            "--config", str(inputs.config),
            "--nlu", str(nlu_dir),
            "--out", str(work_dir / "out"),
            "--fixed-model-name", "model",
        ]  # fmt: skip
        log_lines = _run_streaming(command, rasa_environment(settings), work_dir, on_progress)
        produced = work_dir / "out" / "model.tar.gz"
        if not produced.is_file():
            tail = "\n".join(log_lines[-15:])
            raise NluTrainingError(f"Rasa did not produce a model. Its last output:\n{tail}")
        os.replace(produced, target)  # atomic: a half-written model never carries the final name
    return target, True


def _run_streaming(
    command: list[str], env: dict[str, str], cwd: Path, on_progress: Callable[[int], None] | None
) -> list[str]:
    """Run Rasa, keep its output lines, report epoch progress as it goes. Raises on a non-zero exit."""
    lines: list[str] = []
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    ) as process:
        assert process.stdout is not None
        buffer = b""
        try:
            while chunk := process.stdout.read1(4096):  # type: ignore[attr-defined]
                buffer += chunk
                *complete, buffer = re.split(rb"[\r\n]", buffer)
                for raw in complete:
                    line = raw.decode("utf-8", "replace").strip()
                    if not line:
                        continue
                    lines.append(line)
                    match = _EPOCH_PROGRESS.search(line)
                    if match and on_progress:
                        on_progress(int(match.group(1)))
        except BaseException:  # Ctrl-C or SIGTERM while training: Rasa stops with us
            process.kill()
            raise
        returncode = process.wait()
    if returncode != 0:
        tail = "\n".join(lines[-15:])
        raise NluTrainingError(f"`rasa train nlu` failed (exit {returncode}). Its last output:\n{tail}")
    return lines[-200:]


def validate_data(settings: Settings, inputs: TrainingInputs | None = None) -> str:
    """Run `rasa data validate` on the training data; returns its output, raises on failure."""
    inputs = inputs or TrainingInputs.from_dir(settings.training_data_dir)
    rasa = rasa_executable(settings)
    command = [str(rasa), "data", "validate", "--fail-on-warnings", "--config", str(inputs.config)]
    command += ["--data", *(str(p) for p in inputs.nlu_files)]
    if inputs.domain:
        command += ["--domain", str(inputs.domain)]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        command, env=rasa_environment(settings), cwd=settings.data_dir, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise NluTrainingError(f"`rasa data validate` found problems:\n{output[-4000:]}")
    return output
