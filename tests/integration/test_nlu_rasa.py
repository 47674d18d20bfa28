"""The NLU client against the real Rasa server, trained on the project's data (cached by content hash)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.nlu.client import NluBadResponse, NluClient, NluInputError, NluResult
from bot.nlu.evaluation import load_examples
from bot.nlu.server import NluServer
from bot.nlu.training import NluTrainingError, validate_data
from bot.settings import Settings

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def client(rasa_server: NluServer) -> NluClient:
    return rasa_server.client()


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("@KestrelCare is the fibre down in Leeds?? nothing since 7am #kestreldown", "outage_report"),
        ("hello @KestrelCare", "greeting"),
        ("I want to cancel my contract and leave Kestrel", "cancellation"),
        ("can I speak to a real person please, not a bot", "request_human"),
        ("thanks so much, that fixed it!", "thanks"),
    ],
)
def test_clear_messages_get_their_kind(client: NluClient, text: str, intent: str) -> None:
    result = client.parse(text)
    assert result.top_intent.name == intent, result.to_dict()


def test_personal_data_is_found(client: NluClient) -> None:
    text = (
        "@KestrelCare charged twice, account KT-48213907, call me on 07700 900123 or "
        "mail jo.bloggs@example.com, refund to GB82 WEST 1234 5698 7654 32"
    )
    result = client.parse(text)
    assert result.entity_values("customer_number") == ["KT-48213907"]
    assert any("07700 900123" in value for value in result.entity_values("phone_number"))
    assert result.entity_values("email") == ["jo.bloggs@example.com"]
    assert any(value.replace(" ", "").startswith("GB82WEST") for value in result.entity_values("iban"))


def test_product_synonyms_are_mapped(client: NluClient) -> None:
    result = client.parse("my fiber keeps dropping and the hub 4 lights are red")
    products = set(result.entity_values("product"))
    assert "fibre" in products
    assert "router" in products


@pytest.mark.parametrize("text", ["qwx zzkv plorp", "🦄🦄🦄"])
def test_gibberish_is_never_an_answerable_question(client: NluClient, text: str) -> None:
    result: NluResult = client.parse(text)
    assert result.is_fallback or result.intent == "spam_offtopic", result.to_dict()


HOSTILE_INPUTS = [
    "x" * 10_000,
    "wifi down\x00\x00 again",
    "bill \ud83d wrong",  # a lone surrogate
    "\u202eenod si tenretni ym",  # RTL override
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family plan?",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "{{7*7}} ${jndi:ldap://x} '; DROP TABLE tickets; --",
    "🔥" * 500,
]


@pytest.mark.parametrize("text", HOSTILE_INPUTS, ids=range(len(HOSTILE_INPUTS)))
def test_hostile_input_gets_a_valid_parse_quickly(client: NluClient, text: str) -> None:
    started = time.monotonic()
    result = client.parse(text)
    assert time.monotonic() - started < 5
    assert result.intent
    assert 0 <= result.confidence <= 1


@pytest.mark.parametrize("text", ["", "   \n\t", "\u200b\u2066\u2069"])
def test_empty_input_is_refused_clearly(client: NluClient, text: str) -> None:
    with pytest.raises(NluInputError):
        client.parse(text)


def test_wrong_token_is_refused(rasa_server: NluServer) -> None:
    with NluClient(rasa_server.url, "not-the-token", retries=0) as intruder:
        with pytest.raises(NluBadResponse, match="token"):
            intruder.parse("hello")


def test_the_token_is_on_no_command_line_of_the_server(rasa_server: NluServer, rasa_settings: Settings) -> None:
    assert rasa_server.process is not None
    group = rasa_server.process.pid  # started in its own session: its processes share this group
    command_lines = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.getpgid(int(proc.name)) == group:
                command_lines.append((proc / "cmdline").read_bytes())
        except (OSError, ProcessLookupError):
            continue
    assert any(b"bot.nlu.rasa_run" in line for line in command_lines)
    assert not any(rasa_settings.effective_nlu_token.encode() in line for line in command_lines)


def test_concurrent_parses(client: NluClient) -> None:
    from bot.nlu.service import parse_many

    texts = [f"is the internet down in area {i}?" for i in range(40)]
    results = parse_many(client, texts, concurrency=4)
    assert [r.text for r in results] == texts


def _cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "CAREBOT_DATA_DIR": str(settings.data_dir),
        "CAREBOT_NLU_TOKEN": settings.effective_nlu_token,
        "CAREBOT_NLU_PORT": str(settings.nlu_port),
    } | extra


def test_ask_cli_json(rasa_server: NluServer, rasa_settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "is broadband down in Leeds?", "--json"],
        capture_output=True, text=True, timeout=60, env=_cli_env(rasa_settings),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert parsed["nlu"]["top_intent"]["name"] == "outage_report"
    assert {"intent", "confidence", "ranking", "entities", "is_fallback"} <= parsed["nlu"].keys()
    assert parsed["decision"]["band"] == "human"  # an outage report is for people, with an acknowledgement
    assert parsed["decision"]["reasons"]


def test_ask_cli_reads_stdin_line_by_line(rasa_server: NluServer, rasa_settings: Settings) -> None:
    lines = "hello there\n\nthanks a lot!\n"
    result = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "--json"],
        input=lines, capture_output=True, text=True, timeout=60, env=_cli_env(rasa_settings),
    )  # fmt: skip
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(records) == 3
    assert records[1]["nlu"] is None and "empty" in records[1]["nlu_error"]
    assert records[2]["nlu"]["top_intent"]["name"] == "thanks"


def test_training_data_validates(rasa_settings: Settings) -> None:
    validate_data(rasa_settings)  # raises NluTrainingError with Rasa's findings


def test_validation_catches_an_example_with_two_intents(rasa_settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "training_data"
    shutil.copytree(rasa_settings.training_data_dir, data, ignore=shutil.ignore_patterns("faq.yml", "traffic"))
    first = load_examples(data / "nlu" / "nlu.yml")[0]
    other_intent = "thanks" if first.intent != "thanks" else "greeting"
    with open(data / "nlu" / "nlu.yml", "a") as handle:
        handle.write(f"\n- intent: {other_intent}\n  examples: |\n    - {first.text}\n")
    broken = rasa_settings.model_copy(update={"training_data_dir": data})
    with pytest.raises(NluTrainingError, match="labeled with multiple different intents"):
        validate_data(broken)


def test_held_out_accuracy(rasa_model: Path, rasa_settings: Settings) -> None:
    """`carebot nlu eval --json` trains (here: reuses the cached model) and scores the held-out file."""
    result = subprocess.run(
        [sys.executable, "-m", "bot", "nlu", "eval", "--json"],
        capture_output=True, text=True, timeout=900, env=_cli_env(rasa_settings),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["model"] == rasa_model.name
    assert report["examples"] >= 150
    assert report["intent_accuracy"] >= 0.90, report["most_confused"]
    assert len(report["per_intent"]) >= 15


def _ask_json(settings: Settings, text: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "ask", text, "--json"],
        capture_output=True, text=True, timeout=300, env=_cli_env(settings),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_ask_answers_a_product_question_from_the_faq(rasa_server: NluServer, rasa_settings: Settings) -> None:
    record = _ask_json(rasa_settings, "@KestrelCare hiya, how do I reset my Hub 4 to factory settings?")
    assert record["decision"]["band"] == "auto", record["decision"]["reasons"]
    assert record["decision"]["faq"]["slug"] == "factory-reset-hub"
    assert record["reply_status"] == "bot_posts"
    assert record["reply"].endswith("^bot")


def test_ask_moves_personal_data_to_dm_without_echoing_it(rasa_server: NluServer, rasa_settings: Settings) -> None:
    record = _ask_json(rasa_settings, "@KestrelCare you charged me twice, customer no KT-48213907, fix it")
    assert record["decision"]["dm_handover"] is True
    assert record["decision"]["band"] == "human"
    assert "48213907" not in (record["reply"] or "")
    assert "48213907" not in " ".join(record["decision"]["reasons"])


def test_every_hostile_tweet_gets_a_decision_and_only_valid_replies(
    rasa_server: NluServer, rasa_settings: Settings
) -> None:
    """`carebot ask` with the real Rasa and FAQ on a file of hostile tweets: a decision with reasons for each,
    and every reply the bot would post passes the tone check (length, signature, no echoed personal data)."""
    from bot.decision.tone import BOT, check

    hostile = Path(__file__).resolve().parents[1] / "data" / "hostile_tweets.txt"
    result = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "--json"], input=hostile.read_text(encoding="utf-8"),
        capture_output=True, text=True, timeout=600, env=_cli_env(rasa_settings),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(hostile.read_text(encoding="utf-8").splitlines())
    for record in records:
        assert record["decision"]["band"] in ("auto", "approve", "human", "ignore")
        assert record["decision"]["reasons"]
        if record["reply_status"] == "bot_posts":
            assert check(record["reply"], BOT) == [], record
            assert "<script" not in record["reply"] and "jo.bloggs" not in record["reply"]
    personal = records[-3]
    assert personal["decision"]["dm_handover"] is True
