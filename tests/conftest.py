"""Fixtures: real servers, one per storage backend; every SDK test runs on both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.communication.callautomation import recording_url_validator
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.rooms import RoomsClient

from tests.calls import CallWorld
from tests.phones import Carrier, Scenario, free_udp_port, phone_port
from tests.servers import RUNNING, Server, create_postgres_database, drop_postgres_database

pytest_plugins = ["tests.browsers"]  # Chromium fixtures (playwright, launch) for every browser test


_LOG_STARTS = pytest.StashKey[dict[int, int]]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_LOG_STARTS] = {id(server): server.log_path.stat().st_size for server in RUNNING}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test shows what each running server logged while it ran: a flaky failure in CI
    is then explained by its own run, not guessed at from a rerun."""
    outcome: Any = yield
    report = outcome.get_result()
    if report.failed and call.when == "call":
        starts = item.stash.get(_LOG_STARTS, {})
        for server in RUNNING:
            tail = server.log_tail(starts.get(id(server), 0))
            report.sections.append((f"log of the server in {server.data_dir.name}", tail or "(nothing)"))


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


def start_server(tmp: Path, backend: str, *, tls: bool = True) -> tuple[Server, str | None]:
    database_url = asyncio.run(create_postgres_database()) if backend == "postgresql" else None
    return Server(tmp, database_url=database_url, tls=tls).start(), database_url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A long-lived HTTPS server; tests on it must not depend on a fresh database."""
    started, database_url = start_server(tmp_path_factory.mktemp(request.param), request.param)
    yield started
    started.stop()
    if database_url:
        asyncio.run(drop_postgres_database(database_url))


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started, _ = start_server(tmp_path_factory.mktemp("http"), "sqlite", tls=False)
    yield started
    started.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for tests that restart or kill it."""
    started, database_url = start_server(tmp_path, request.param)
    yield started
    started.stop()
    if database_url:
        asyncio.run(drop_postgres_database(database_url))


@pytest.fixture
def rooms(server: Server) -> RoomsClient:
    """The official Rooms SDK, from a connection string over HTTPS with the generated CA."""
    return RoomsClient.from_connection_string(server.connection_string, connection_verify=server.ca_path)


@pytest.fixture
def identity(server: Server) -> CommunicationIdentityClient:
    return CommunicationIdentityClient.from_connection_string(
        server.connection_string, connection_verify=server.ca_path
    )


@pytest.fixture(scope="session")
def call_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server (SQLite, HTTPS) whose call host runs a real Janus; room-call tests share it."""
    started, _ = start_server(tmp_path_factory.mktemp("calls"), "sqlite")
    yield started
    started.stop()


@pytest.fixture
async def world(call_server: Server) -> AsyncIterator[CallWorld]:
    created = CallWorld(call_server)
    yield created
    await created.close()


# -- the telephone network (tests/phones.py): one carrier port and SIP listener per module ---


@pytest.fixture(scope="module")
def trunk_port() -> Iterator[int]:
    with phone_port() as port:
        yield port


@pytest.fixture(scope="module")
def sip_listen() -> str:
    return f"127.0.0.1:{free_udp_port()}"


@pytest.fixture
def carrier(tmp_path: Path, trunk_port: int) -> Iterator[Any]:
    """Starts sipp carriers on the trunk's port (``carrier(Scenario(...), **options)``); stops them after."""
    started: list[Carrier] = []

    def start(scenario: Scenario | str, **options: Any) -> Carrier:
        started.append(Carrier(tmp_path / f"carrier{len(started)}", trunk_port, scenario, **options))
        return started[-1]

    yield start
    for one in started:
        one.stop()


@pytest.fixture
def vrooms_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Call Automation SDK downloads recordings only from Microsoft's hosts (an SSRF guard in
    the client); an app of a vrooms server adds that server's host, as the README shows."""
    allowed = (*recording_url_validator.ALLOWED_HOST_SUFFIXES, "127.0.0.1")
    monkeypatch.setattr(recording_url_validator, "ALLOWED_HOST_SUFFIXES", allowed)
