"""Real vrooms servers for the tests: ``vrooms serve`` in a subprocess, on SQLite or PostgreSQL."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx

from vrooms.auth.hmac import authorization_header, content_hash
from vrooms.media.supervisor import free_port as free_port  # re-exported: tests and benches pick ports with it

T = TypeVar("T")

RUNNING: list[Server] = []  # every started, not yet stopped server: a failed test shows their logs

POSTGRES_ADMIN_URL = os.environ.get("VROOMS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


async def create_postgres_database() -> str:
    name = f"vrooms_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


async def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# The tests' webhook, callback and WebSocket receivers listen on loopback, which the server's
# egress policies refuse by default (vrooms/egress.py); prompts keep the default (public only).
LOCAL_RECEIVERS = {
    f"VROOMS_EGRESS_{kind}": "public,private,loopback" for kind in ("CALLBACKS", "STREAMING", "WEBHOOKS")
}


@dataclass
class Server:
    data_dir: Path
    database_url: str | None = None
    tls: bool = True
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    log_level: str = "warning"
    access_log: bool = False
    process: subprocess.Popen[bytes] | None = None
    # Where it listens, and what runs it (``ip netns exec NS`` puts it in a network namespace).
    host: str = "127.0.0.1"
    prefix: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ca_path(self) -> str:
        return str(self.data_dir / "tls" / "ca.pem")

    @property
    def keys(self) -> dict[str, str]:
        keys: dict[str, str] = json.loads((self.data_dir / "keys.json").read_text())
        return keys

    @property
    def key(self) -> str:
        return self.keys["primary"]

    @property
    def connection_string(self) -> str:
        return f"endpoint={self.endpoint}/;accesskey={self.key}"

    def command(self, *args: str) -> list[str]:
        base = [*self.prefix, sys.executable, "-m", "vrooms", "--data-dir", str(self.data_dir)]
        if self.database_url:
            base += ["--database-url", self.database_url]
        return base + list(args)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def start(self) -> Server:
        args = ["serve", "--port", str(self.port), "--workers", str(self.workers), "--log-level", self.log_level]
        args += ["--host", self.host]
        if not self.tls:
            args.append("--no-tls")
        if self.access_log:
            args.append("--access-log")
        env = {**os.environ, **LOCAL_RECEIVERS, **self.extra_env}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A file, not a pipe: the server and its call host log for as long as the tests run.
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(*args), env=env, stdout=log, stderr=log)
        if all(running is not self for running in RUNNING):
            RUNNING.append(self)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vrooms serve exited: {self.log_path.read_text()[-4000:]}")
            try:
                with self.client() as client:
                    client.get("/health", timeout=1)
                return self
            except (httpx.HTTPError, FileNotFoundError):
                time.sleep(0.1)
        raise RuntimeError("vrooms serve did not answer within 30 s")

    def log_tail(self, since: int, lines: int = 80) -> str:
        """The last ``lines`` lines the server logged after byte ``since`` (a test's start)."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            return "\n".join(log.read().decode(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        RUNNING[:] = [running for running in RUNNING if running is not self]
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=15)

    def kill_everything(self) -> None:
        """``kill -9`` of every process of this node at once: server, workers, call host, Janus, dispatcher."""
        assert self.process is not None
        for pid in process_tree(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=15)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **LOCAL_RECEIVERS, **self.extra_env}
        return subprocess.run(self.command(*args), capture_output=True, text=True, check=check, timeout=60, env=env)

    def call_host_pid(self) -> int:
        return self._children(self.process.pid if self.process else 0, "vrooms.calls.host")[0]

    def call_host_children(self, pattern: str) -> list[int]:
        """The call host's child processes whose command line matches ``pattern`` (pgrep -f)."""
        return self._children(self.call_host_pid(), pattern)

    @staticmethod
    def _children(parent: int, pattern: str) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(parent), "-f", pattern], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def kill_call_host(self) -> None:
        """SIGKILL the call host (the launcher starts a new one): a crash, as the host sees it."""
        os.kill(self.call_host_pid(), signal.SIGKILL)

    def janus_pid(self) -> int:
        """The Janus the call host started for this server (found by its configuration folder)."""
        pattern = f"--configs-folder={self.data_dir / 'janus'}"
        found = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True, check=True)
        return int(found.stdout.split()[0])

    def client(self) -> httpx.Client:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=self.ca_path) if self.tls else False
        return httpx.Client(base_url=self.endpoint, verify=verify, timeout=30)


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    pids, frontier = [pid], [pid]
    while frontier:
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", ",".join(map(str, frontier))], capture_output=True, text=True
        )
        frontier = [int(child) for child in children.stdout.split()]
        pids += frontier
    return pids


def signed_headers(
    key: str,
    method: str,
    url: str,
    body: bytes = b"",
    *,
    date: datetime | None = None,
    sign_target: str | None = None,
    host: str | None = None,
) -> dict[str, str]:
    """Headers as the ACS SDKs sign them; the keyword arguments let a test cheat."""
    parsed = httpx.URL(url)
    target = sign_target or parsed.raw_path.decode()
    stamp = format_datetime(date or datetime.now(UTC), usegmt=True)
    netloc = host or parsed.netloc.decode()
    return {
        "x-ms-date": stamp,
        "x-ms-content-sha256": content_hash(body),
        "Authorization": authorization_header(base64.b64decode(key), method, target, stamp, netloc, body),
        "Content-Type": "application/json",
    }


def signed(
    server: Server, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **cheats: Any
) -> httpx.Response:
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    url = f"{server.endpoint}{path}"
    key = cheats.pop("key", server.key)
    extra = cheats.pop("headers", {})
    headers = {**signed_headers(key, method, url, content, **cheats), **extra}
    with server.client() as client:
        return client.request(method, url, content=content, headers=headers)


def eventually(check: Callable[[], T], timeout: float = 10.0) -> T:
    """Poll ``check`` until it returns something truthy: for state another process settles
    on its own schedule (a batch flush, a key re-read). Fails with the last value."""
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert value, f"still {value!r} after {timeout} s"
    return value
