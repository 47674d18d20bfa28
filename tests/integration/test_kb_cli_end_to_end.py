"""`carebot kb` end to end with the real model: import the default FAQ, search it as JSON, publish, roll back,
and export it again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def carebot(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CAREBOT_DATA_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, timeout=300,
        env=environment, stdin=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_import_search_publish_rollback_export(tmp_path: Path) -> None:
    imported = carebot(["kb", "import", str(ROOT / "training_data" / "faq.yml"), "--author", "ed"], tmp_path)
    assert imported.returncode == 0 and "81 created" in imported.stderr and "81 published" in imported.stderr
    assert (tmp_path / "var" / "kb-index" / "faq-index.json").is_file()

    found = carebot(["kb", "search", "my hub is flashing red", "--json", "-k", "3"], tmp_path)
    result = json.loads(found.stdout)
    assert result["hits"][0]["slug"] == "hub-lights-meaning" and len(result["hits"]) == 3
    assert abs(result["margin"] - (result["hits"][0]["score"] - result["hits"][1]["score"])) <= 2e-4
    assert result["kb_version"] == 1

    assert carebot(["kb", "publish", "restart-router"], tmp_path).returncode == 1  # nothing to publish
    assert carebot(["kb", "unpublish", "restart-router"], tmp_path).returncode == 0
    assert carebot(["kb", "rollback", "restart-router", "1"], tmp_path).returncode == 0
    history = carebot(["kb", "history", "restart-router"], tmp_path).stdout.splitlines()
    assert [line.split()[0] for line in history] == ["v1", "v2"] and history[1].endswith("(live)")

    exported = tmp_path / "export.yml"
    assert carebot(["kb", "export", str(exported)], tmp_path).returncode == 0
    original = yaml.safe_load((ROOT / "training_data" / "faq.yml").read_text())["entries"]
    again = yaml.safe_load(exported.read_text())["entries"]
    assert again == [{**entry, "status": "published"} for entry in original]
