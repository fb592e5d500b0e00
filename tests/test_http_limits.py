"""The public port before any request reaches the app: head size, slow heads, slow bodies,
malformed requests. A server of its own with 1 s deadlines (the defaults are 10 s and 30 s)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Server

V = "api-version=2025-03-13"


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    deadlines = {"VROOMS_HTTP_HEAD_TIMEOUT_SECONDS": "1", "VROOMS_HTTP_BODY_TIMEOUT_SECONDS": "1"}
    server = Server(Path(tmp_path_factory.mktemp("limits")), tls=False, extra_env=deadlines).start()
    yield server
    server.stop()


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    pairs = (line.split(": ", 1) for line in header_lines)
    headers = {name.lower(): value for name, value in pairs}
    return int(status_line.split()[1]), headers, body


def _acs_error(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(body)["error"]
    assert headers["content-type"] == "application/json" and headers["x-ms-error-code"] == error["code"]
    return error


def test_a_head_over_64_kib_is_refused_in_acs_shape(strict_server: Server) -> None:
    with _connect(strict_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        status, headers, body = _response(sock)
    assert status == 400
    assert "64 KiB" in _acs_error(headers, body)["message"]


def test_malformed_http_gets_an_acs_error(strict_server: Server) -> None:
    with _connect(strict_server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, headers, body = _response(sock)
    assert status == 400 and _acs_error(headers, body)["code"] == "BadRequest"


def test_slow_heads_are_closed_even_when_they_trickle(strict_server: Server) -> None:
    """50 slowloris connections, each sending one header byte every 0.2 s: all are closed."""
    sockets = [_connect(strict_server) for _ in range(50)]
    for sock in sockets:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        sock.setblocking(False)
    open_ones, deadline = set(sockets), time.monotonic() + 10
    while open_ones and time.monotonic() < deadline:
        time.sleep(0.2)  # the attacker's pace, not synchronisation: the loop ends on the close
        for sock in list(open_ones):
            try:
                if sock.recv(1024) == b"":
                    open_ones.discard(sock)
                    continue
            except BlockingIOError:
                pass  # still open, nothing to read
            except OSError:  # closed with our trickled bytes unread: a reset
                open_ones.discard(sock)
                continue
            try:
                sock.send(b"X")
            except OSError:
                open_ones.discard(sock)
    for sock in sockets:
        sock.close()
    assert not open_ones, f"{len(open_ones)} slow connections still open after 10 s"


def test_a_slow_body_gets_408_without_a_key(strict_server: Server) -> None:
    with _connect(strict_server) as sock:
        sock.sendall(f"POST /rooms?{V} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
        status, headers, body = _response(sock)
    assert status == 408 and _acs_error(headers, body)["code"] == "RequestTimeout"


def _one_response(sock: socket.socket) -> bytes:
    """One response on a keep-alive connection (its head, then Content-Length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_normal_keep_alive_client_is_unaffected(strict_server: Server) -> None:
    with _connect(strict_server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _one_response(sock).startswith(b"HTTP/1.1 200")
