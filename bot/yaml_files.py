"""Reading carebot's own YAML files (policy, tone guide, validation data) with one clear error per problem.

They are read like FAQ imports (knowledge_base/safe_yaml.py): at most 2 MB, no anchors or aliases, at most 20
levels deep, so a hostile or broken file ends in one error naming it, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from knowledge_base.safe_yaml import FileTooLarge, YamlProblem, load, read_limited


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """The parsed document at `path`; an unreadable file or invalid YAML raises `error` naming `what` and the path."""
    try:
        text = read_limited(path).decode("utf-8")
    except FileTooLarge as exc:
        raise error(f"the {what} {path}: {exc}") from exc
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"the {what} {path} is not UTF-8 text") from exc
    try:
        return load(text)
    except YamlProblem as exc:
        raise error(f"{path} is not valid YAML: {exc}") from exc
