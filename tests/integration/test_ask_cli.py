"""`carebot ask` end to end without Rasa: the real MiniLM model and FAQ, a decision for every line, no crash.

With the NLU server down (or the text unclassifiable) nothing is auto-answered; the decision says why.
The same command against the real Rasa server is tested in test_nlu_rasa.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bot.nlu.service import free_port

HOSTILE_LINES = [
    "how do I reset my hub to factory settings",
    "   ",
    "x" * 10_000,
    "wifi down\x00 again",
    "\u202eenod si tenretni ym",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "{{7*7}} ${jndi:ldap://x} '; DROP TABLE tickets; --",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 family plan?",
]


def run_ask(tmp_path: Path, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CAREBOT_DATA_DIR": str(tmp_path / "var"),
        "CAREBOT_NLU_PORT": str(free_port()),  # nothing listens there: the NLU is down
        "CAREBOT_NLU_RETRIES": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "ask", *args], input=stdin, capture_output=True, text=True, timeout=300,
        env=env,
    )  # fmt: skip


def test_every_hostile_line_gets_a_decision_and_nothing_is_automatic(tmp_path: Path) -> None:
    result = run_ask(tmp_path, ["--json"], stdin="\n".join(HOSTILE_LINES) + "\n")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(HOSTILE_LINES)
    for record in records:
        assert record["decision"]["band"] in ("human", "ignore")
        assert record["reply_status"] != "bot_posts"
        assert record["nlu"] is None and record["nlu_error"]
    assert "unavailable" in records[0]["nlu_error"]
    assert records[0]["faq_search"]["hits"][0]["slug"]  # the FAQ search still ran
    assert "no words" in " ".join(records[1]["decision"]["reasons"])


def test_text_argument_prints_reasons_for_a_person(tmp_path: Path) -> None:
    result = run_ask(tmp_path, ["is fibre down in Leeds?"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("human")
    assert "NLU" in result.stdout
