"""What every benchmark shares: percentiles, the machine's description, the project's tweets, JSON output."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from bot.nlu.evaluation import Example, load_examples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> dict[str, Any]:
    return {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(), "python": sys.version.split()[0]}


def intent_examples(path: Path) -> list[Example]:
    """The intent examples of one NLU file; none for a file of regexes and lookups only."""
    try:
        return load_examples(path)
    except ValueError:
        return []


def emit(report: dict[str, Any], out: Path | None) -> None:
    """Print the report as JSON, and write it to `out` too when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
