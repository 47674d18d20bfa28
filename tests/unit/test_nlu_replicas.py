"""The NLU client over several Rasa servers: parses spread in turn, a dead server taken out and put back when it
answers again, and a clear NluUnavailable at once while none answers (fake servers over real loopback HTTP)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.nlu.client import NluClient, NluUnavailable
from bot.nlu.service import free_port
from bot.nlu.testing import FakeRasaServer
from bot.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_parses_are_spread_over_every_server() -> None:
    with FakeRasaServer() as a, FakeRasaServer() as b, FakeRasaServer() as c:
        with NluClient([a.url, b.url, c.url], "test-token") as client:
            for i in range(9):
                assert client.parse(f"hello {i}").intent == "greeting"
        assert (a.requests, b.requests, c.requests) == (3, 3, 3)


def test_a_dead_server_is_taken_out_and_put_back_when_it_answers_again() -> None:
    clock = Clock()
    with FakeRasaServer() as alive, FakeRasaServer(mode="error") as sick:
        with NluClient([sick.url, alive.url], "test-token", recheck_s=5, clock=clock) as client:
            results = [client.parse(f"hi {i}") for i in range(6)]
            assert all(r.intent == "greeting" for r in results)  # no parse failed: the other server took over
            assert sick.requests == 1  # tried once, then out until its check is due
            assert [r.up for r in client.replicas] == [False, True]

            sick.mode = "ok"  # it recovers; its status is asked once its check is due
            client.parse("still out")
            assert sick.requests == 1
            clock.now += 5
            for i in range(4):
                client.parse(f"back {i}")
            assert client.replicas[0].up
            assert sick.requests == 1 + 2  # back in turn


def test_a_server_that_refuses_connections_is_failed_over_quickly() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with FakeRasaServer() as alive, NluClient([dead, alive.url], "test-token") as client:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(client.parse, [f"tweet {i}" for i in range(20)]))
        assert len(results) == 20
        assert client.replicas[1].parses == 20 and client.replicas[0].failures >= 1


def test_while_no_server_answers_a_parse_fails_at_once_and_names_them() -> None:
    clock = Clock()
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    with NluClient(urls, "test-token", recheck_s=2, clock=clock) as client:
        with pytest.raises(NluUnavailable) as first:
            client.parse("is anyone there")
        assert all(url in str(first.value) for url in urls)
        with pytest.raises(NluUnavailable, match="every one is out"):
            client.parse("and now")  # no request: both are out until their checks are due
        assert sum(r.failures for r in client.replicas) == 2


def test_a_slow_server_is_taken_out_after_its_timeout() -> None:
    with FakeRasaServer() as fast, FakeRasaServer(mode="slow", delay_s=3) as slow:
        with NluClient([slow.url, fast.url], "test-token", timeout_s=0.3) as client:
            assert client.parse("hello").intent == "greeting"
            assert not client.replicas[0].up and fast.requests == 1


def test_the_backoff_between_checks_doubles_up_to_its_limit() -> None:
    clock = Clock()
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    with NluClient(urls, None, recheck_s=1, recheck_max_s=4, clock=clock) as client:
        intervals = []
        for _ in range(5):
            with pytest.raises(NluUnavailable):
                client.parse("hi")
            intervals.append(client.replicas[0].check_interval_s)
            clock.now += 10
        assert intervals == [1, 2, 4, 4, 4]


def test_the_settings_name_several_servers() -> None:
    settings = Settings(nlu_urls=["http://127.0.0.1:5005/", "https://nlu-2.internal:5005"])
    assert settings.effective_nlu_urls == ["http://127.0.0.1:5005", "https://nlu-2.internal:5005"]
    assert Settings(nlu_port=5999).effective_nlu_urls == ["http://127.0.0.1:5999"]
    with pytest.raises(ValueError, match="travels in the URL"):
        Settings(nlu_urls=["http://nlu-2.internal:5005"])
    with pytest.raises(ValueError, match="twice"):
        Settings(nlu_urls=["http://127.0.0.1:5005", "http://127.0.0.1:5005/"])
