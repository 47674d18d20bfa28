"""Reading YAML files that anyone may have written (FAQ imports, and carebot's policy, tone and validation files).

- A file is read only up to MAX_FILE_BYTES (2 MB): a larger one is refused before anything is parsed.
- Anchors and aliases (`&name`, `*name`) are refused: no file of ours needs them, and an alias can make a small
  file expand into a huge document.
- Nesting deeper than MAX_DEPTH levels is refused, checked on the parser's events (which need no recursion), so a
  file of 20,000 nested lists gets a clear message instead of a RecursionError.
- The file is composed once (libyaml's C parser when PyYAML has it) and its data built from that node tree.

Every problem is a YamlProblem with the line it was found on, when there is one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 20  # FAQ files nest 4 levels, the policy and tone files 3
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPENING = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSING = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


class YamlProblem(Exception):
    """The text is not YAML we read; `line` is where (None: the file as a whole)."""

    def __init__(self, line: int | None, problem: str) -> None:
        super().__init__(f"line {line}: {problem}" if line else problem)
        self.line = line
        self.problem = problem


class FileTooLarge(ValueError):
    """The file is larger than the limit; nothing of it was parsed."""


def read_limited(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes, reading at most `limit` + 1 of them. Raises FileTooLarge past the limit, OSError when the
    file cannot be read."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"the file is larger than {limit / 1024 / 1024:g} MB, the most carebot reads")
    return data


def _line(event_or_node: Any) -> int | None:
    mark = getattr(event_or_node, "start_mark", None)
    return None if mark is None else int(mark.line) + 1


def _check_events(text: str, max_depth: int) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise YamlProblem(_line(event), "anchors and aliases (&name, *name) are not supported")
        if isinstance(event, _OPENING):
            depth += 1
            if depth > max_depth:
                raise YamlProblem(_line(event), f"nested more than {max_depth} levels deep")
        elif isinstance(event, _CLOSING):
            depth -= 1


def compose_and_load(text: str, *, max_depth: int = MAX_DEPTH) -> tuple[yaml.Node | None, Any]:
    """The document's root node (for line numbers) and its data; raises YamlProblem."""
    try:
        _check_events(text, max_depth)
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            data = None if root is None else loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlProblem(None if mark is None else mark.line + 1, f"not valid YAML ({problem})") from exc
    except RecursionError as exc:  # only if the parser recursed deeper than the event check foresaw
        raise YamlProblem(None, "not valid YAML (nested too deeply)") from exc
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date like 2024-13-45
        raise YamlProblem(None, f"not valid YAML ({exc})") from exc
    return root, data


def load(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The document's data; raises YamlProblem."""
    return compose_and_load(text, max_depth=max_depth)[1]
