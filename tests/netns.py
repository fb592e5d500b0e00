"""Network namespaces for multi-node tests: each node on an address of its own, behind a bridge.

Only addresses the test creates: a bridge in the root namespace with 10.231.N.1/24 (N chosen
free of the machine's routes), one namespace per node with 10.231.N.(10+i) on a veth into that
bridge. Nodes reach each other, NATS (on the bridge address) and the tests' clients (in the root
namespace) over it; PostgreSQL through its Unix socket (the file system is shared).
"""

from __future__ import annotations

import random
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

POSTGRES_SOCKET_DIR = "/var/run/postgresql"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _free_subnet() -> int:
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    choices = [n for n in range(1, 255) if f"10.231.{n}." not in routes]
    return random.choice(choices)


@dataclass
class Network:
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    subnet: int = field(default_factory=_free_subnet)
    namespaces: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"vrb{self.tag}"

    @property
    def gateway(self) -> str:
        """The bridge's address, in the root namespace (the tests' clients and NATS are there)."""
        return f"10.231.{self.subnet}.1"

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def host(self) -> tuple[list[str], str]:
        """A new namespace with its own address: (the prefix that runs a command in it, the address)."""
        index = len(self.namespaces)
        name, veth, address = f"vr{self.tag}{index}", f"vr{self.tag}{index}h", f"10.231.{self.subnet}.{10 + index}"
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        _ip("link", "set", veth, "master", self.bridge, "up")
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "link", "set", "lo", "up")
        return ["ip", "netns", "exec", name], address

    def remove(self) -> None:
        for name in self.namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)


@contextmanager
def network() -> Iterator[Network]:
    made = Network()
    made.create()
    try:
        yield made
    finally:
        made.remove()


def socket_url(database_url: str) -> str:
    """The same PostgreSQL database through its Unix socket (reachable from any namespace)."""
    name = database_url.rsplit("/", 1)[1]
    return f"postgresql://postgres@/{name}?host={POSTGRES_SOCKET_DIR}"
