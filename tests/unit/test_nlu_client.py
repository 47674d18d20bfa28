"""The NLU client against a fake Rasa over real HTTP: timeouts, errors and garbage give one clear error."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.nlu.client import (
    NluBadResponse,
    NluClient,
    NluError,
    NluInputError,
    NluUnavailable,
    parse_response,
)
from bot.nlu.service import free_port
from bot.nlu.testing import FakeRasaServer, canned_parse


def make_client(url: str, **kwargs: object) -> NluClient:
    options: dict = {"timeout_s": 0.3, "retries": 2, "backoff_s": 0.01} | kwargs
    return NluClient(url, "test-token", **options)


def test_parse_returns_a_typed_result() -> None:
    with FakeRasaServer() as fake, make_client(fake.url) as client:
        result = client.parse("  hello   there ")
    assert result.intent == "greeting"
    assert result.text == "hello there"
    assert result.ranking[0].name == "greeting"
    assert not result.is_fallback


def test_slow_server_times_out_after_bounded_retries() -> None:
    with FakeRasaServer(mode="slow", delay_s=5) as fake, make_client(fake.url) as client:
        started = time.monotonic()
        with pytest.raises(NluUnavailable, match="timed out after 3 attempts"):
            client.parse("is the internet down")
        elapsed = time.monotonic() - started
    assert fake.requests == 3
    assert elapsed < 3


def test_server_errors_are_retried_then_reported() -> None:
    with FakeRasaServer(mode="error") as fake, make_client(fake.url) as client:
        with pytest.raises(NluUnavailable, match="HTTP 500"):
            client.parse("hello")
    assert fake.requests == 3


def test_recovers_when_the_server_comes_back_within_the_retries() -> None:
    with FakeRasaServer(mode="error") as fake, make_client(fake.url, backoff_s=0.3) as client:
        import threading

        threading.Timer(0.1, lambda: setattr(fake, "mode", "ok")).start()
        assert client.parse("hello").intent == "greeting"


@pytest.mark.parametrize("mode", ["garbage", "wrong_shape", "unauthorized"])
def test_garbage_and_refusals_are_bad_responses_not_retried(mode: str) -> None:
    with FakeRasaServer(mode=mode) as fake, make_client(fake.url) as client:
        with pytest.raises(NluBadResponse):
            client.parse("hello")
    assert fake.requests == 1


def test_wrong_token_is_named() -> None:
    with FakeRasaServer(token="right") as fake, NluClient(fake.url, "wrong", retries=0) as client:
        with pytest.raises(NluBadResponse, match="auth token"):
            client.parse("hello")


def test_connection_reset_is_unavailable() -> None:
    with FakeRasaServer(mode="reset") as fake, make_client(fake.url) as client:
        with pytest.raises(NluUnavailable):
            client.parse("hello")


def test_nothing_listening_is_unavailable_quickly() -> None:
    with make_client(f"http://127.0.0.1:{free_port()}") as client:
        started = time.monotonic()
        with pytest.raises(NluUnavailable, match="cannot connect"):
            client.parse("hello")
        assert time.monotonic() - started < 2


@pytest.mark.parametrize("text", ["", "   ", "\u200b\u200b"])
def test_empty_text_is_an_input_error_without_a_request(text: str) -> None:
    with FakeRasaServer() as fake, make_client(fake.url) as client:
        with pytest.raises(NluInputError):
            client.parse(text)
    assert fake.requests == 0


def test_fallback_result_keeps_the_classifier_guess() -> None:
    payload = {
        "intent": {"name": "nlu_fallback", "confidence": 0.45},
        "intent_ranking": [
            {"name": "nlu_fallback", "confidence": 0.45},
            {"name": "complaint", "confidence": 0.31},
            {"name": "cancellation", "confidence": 0.29},
        ],
        "entities": [],
    }
    result = parse_response(payload, "meh")
    assert result.is_fallback
    assert result.top_intent.name == "complaint"


def test_entities_carry_their_span_text() -> None:
    text = "my number is 07700 900123"
    payload = canned_parse(text) | {
        "entities": [{"entity": "phone_number", "value": "07700 900123", "start": 13, "end": 25, "extractor": "X"}]
    }
    result = parse_response(payload, text)
    assert result.entity_values("phone_number") == ["07700 900123"]
    assert result.entities[0].text == "07700 900123"


@pytest.mark.parametrize(
    "payload",
    [
        None, [], "x", {}, {"intent": None}, {"intent": {"name": ""}},
        {"intent": {"name": "a", "confidence": "high"}},
        {"intent": {"name": "a", "confidence": float("nan")}},
        {"intent": {"name": "a", "confidence": 7}},
        {
            "intent": {"name": "a", "confidence": 0.5},
            "entities": [{"entity": "x", "start": 0, "end": 99, "value": "v"}],
        },
        {"intent": {"name": "a", "confidence": 0.5}, "intent_ranking": [{"name": "b"}]},
    ],
)
def test_malformed_payloads_are_bad_responses(payload: object) -> None:
    with pytest.raises(NluBadResponse):
        parse_response(payload, "hello")


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_any_json_gives_a_result_or_a_bad_response(payload: object) -> None:
    try:
        parse_response(payload, "hello")
    except NluError as exc:
        assert isinstance(exc, NluBadResponse)
