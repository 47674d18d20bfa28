"""Reading carebot's own YAML files (policy, tone guide, validation data) with one clear error per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """The parsed document at `path`; an unreadable file or invalid YAML raises `error` naming `what` and the path."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path} is not valid YAML: {exc}") from exc
