"""Several vrooms nodes for the tests: one PostgreSQL database, one NATS, a cluster name of their own.

Each node is a whole ``vrooms serve`` (REST workers, call host, its own Janus, dispatcher) with
its own data dir and port; only PostgreSQL and NATS are shared, as on several hosts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import Server

NATS_URL = os.environ.get("VROOMS_TEST_NATS", "nats://127.0.0.1:4222")


@dataclass
class Cluster:
    root: Path
    database_url: str
    nats_url: str = NATS_URL
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:12]}")
    nodes: list[Server] = field(default_factory=list)
    tls: bool = True

    def node(
        self,
        node_name: str,
        *,
        host: str = "127.0.0.1",
        prefix: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> Server:
        """A node (not started): ``start()`` it, or use ``start`` to start several at once."""
        server = Server(
            self.root / node_name,
            database_url=self.database_url,
            host=host,
            prefix=prefix or [],
            tls=self.tls,
            # A cluster's failures are about timing: what each node decided, and when, is in its log.
            log_level="info",
            extra_env={
                "VROOMS_CLUSTER": self.nats_url,
                "VROOMS_CLUSTER_NAME": self.name,
                "VROOMS_NODE_NAME": node_name,
                **(env or {}),
            },
        )
        self.nodes.append(server)
        return server

    def start(self, *names: str) -> list[Server]:
        """Nodes one after the other (the first writes the shared secrets), then all placeable."""
        started = [self.node(name).start() for name in names]
        self.wait_for_nodes(len(self.nodes))
        return started

    def status(self) -> dict[str, Any]:
        node = next(server for server in self.nodes if server.process and server.process.poll() is None)
        result = node.cli("cluster", "status", "--json")
        status: dict[str, Any] = json.loads(result.stdout)
        return status

    def wait_for_nodes(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Until ``count`` nodes are alive with their media up (their Janus answers)."""
        deadline = time.monotonic() + timeout
        while True:
            nodes = [n for n in self.status()["nodes"] if n.get("media") and not n.get("lost")]
            if len(nodes) == count:
                return nodes
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(nodes)} of {count} nodes up: {self.status()}")
            time.sleep(0.2)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}; {self.status()}")
            time.sleep(0.1)

    def participants_on(self, node_name: str) -> int:
        return sum(int(n["participants"]) for n in self.status()["nodes"] if n["name"] == node_name)

    def holder(self, room_id: str) -> str | None:
        """The node that holds the room's call (its lease), if any."""
        for node in self.status()["nodes"]:
            if room_id in node["rooms"] and not node.get("lost"):
                return str(node["name"])
        return None

    def stop(self) -> None:
        for server in self.nodes:
            if server.process and server.process.poll() is None:
                server.stop()


@dataclass
class NatsServer:
    """A NATS server of the test's own (JetStream on), to stop and start again mid-call."""

    store: Path
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self) -> None:
        self.store.mkdir(parents=True, exist_ok=True)
        command = ["nats-server", "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def cluster_of(root: Path, database_url: str, **options: Any) -> Iterator[Cluster]:
    cluster = Cluster(root, database_url, **options)
    try:
        yield cluster
    finally:
        cluster.stop()
