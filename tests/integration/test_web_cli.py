"""`carebot users add|list` and `carebot web` as real processes: an account created on the command line logs in
to the running web app over HTTP and works the queue."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CAREBOT = [sys.executable, "-m", "bot"]
PASSWORD = "a long enough password"


def _env(tmp_path: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CAREBOT_DATA_DIR": str(tmp_path / "var")}


def run(args: list[str], tmp_path: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(CAREBOT + args, capture_output=True, text=True, timeout=120, env=_env(tmp_path), input=stdin)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_users_add_and_list(tmp_path: Path) -> None:
    added = run(["users", "add", "ann", "--role", "agent", "--name", "Ann Brown", "--initials", "AB",
                 "--password-stdin"], tmp_path, PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "Created agent ann (Ann Brown, signs ^AB)" in added.stderr
    editor = run(["users", "add", "eve", "--role", "editor", "--name", "Eve", "--password-stdin"], tmp_path, PASSWORD)
    assert editor.returncode == 0, editor.stderr
    listed = run(["users", "list"], tmp_path)
    assert "ann" in listed.stdout and "AB" in listed.stdout and "editor" in listed.stdout

    again = run(["users", "add", "ann", "--role", "agent", "--name", "Ann", "--initials", "AN", "--password-stdin"],
                tmp_path, PASSWORD)  # fmt: skip
    assert again.returncode == 1 and "taken" in again.stderr and "Traceback" not in again.stderr
    weak = run(["users", "add", "bob", "--role", "agent", "--name", "Bob", "--initials", "BO", "--password-stdin"],
               tmp_path, "short")  # fmt: skip
    assert weak.returncode == 1 and "at least" in weak.stderr and "Traceback" not in weak.stderr
    no_initials = run(["users", "add", "cy", "--role", "lead", "--name", "Cy", "--password-stdin"], tmp_path, PASSWORD)
    assert no_initials.returncode == 1 and "initials" in no_initials.stderr

    assert run(["users", "disable", "eve"], tmp_path).returncode == 0
    assert " no " in run(["users", "list"], tmp_path).stdout.split("eve", 1)[1].splitlines()[0]
    assert run(["users", "enable", "eve"], tmp_path).returncode == 0
    changed = run(["users", "set-password", "eve", "--password-stdin"], tmp_path, "another long password")
    assert changed.returncode == 0, changed.stderr
    unknown = run(["users", "disable", "nobody"], tmp_path)
    assert unknown.returncode == 1 and "no account nobody" in unknown.stderr


def test_carebot_web_serves_the_console_to_an_account_from_the_command_line(tmp_path: Path) -> None:
    assert run(["users", "add", "ann", "--role", "agent", "--name", "Ann Brown", "--initials", "AB",
                "--password-stdin"], tmp_path, PASSWORD).returncode == 0  # fmt: skip
    port = _free_port()
    server = subprocess.Popen(
        CAREBOT + ["web", "--host", "127.0.0.1", "--port", str(port)], env=_env(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "carebot web did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, follow_redirects=False) as client:
            page = client.get("/login")
            token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
            login = client.post("/login", data={"username": "ann", "password": PASSWORD, "login_token": token})
            assert login.status_code == 303
            queue = client.get("/queue")
            assert queue.status_code == 200 and "The queue is empty" in queue.text
            assert "default-src 'none'" in queue.headers["content-security-policy"]
    finally:
        server.terminate()
        server.wait(timeout=30)
