"""Where the server may connect when a client names the URL: one policy per kind of URL.

An app names URLs that the server then opens itself: prompt files to fetch, callback URIs,
media-streaming WebSockets, webhook endpoints. Without a policy an app can make the server
reach what only the server can reach (its loopback services, the cloud's metadata address
169.254.169.254, the private network behind it): server-side request forgery. Each kind of
URL has its own setting (``VROOMS_EGRESS_PROMPTS``, ``..._CALLBACKS``, ``..._STREAMING``,
``..._WEBHOOKS``), a comma-separated list of:

- ``public``: addresses routed on the Internet (``is_global``);
- ``private``: RFC 1918, RFC 6598 (carrier-grade NAT) and RFC 4193 (unique local) networks;
- ``loopback``: 127.0.0.0/8 and ::1;
- a network in CIDR notation (``10.1.0.0/16``), matched against the address;
- any other word: a host name (or an address) exactly as the URL writes it, allowed
  whatever it resolves to (the operator vouches for it).

Link-local (169.254.0.0/16, fe80::/10), multicast and unspecified addresses belong to no
class: only a network entry naming them allows them. The check is on the address actually
connected to, not only on the name: ``connector`` resolves through ``_PolicyResolver``,
which hands aiohttp only allowed addresses (a name that resolves to a public address
when checked and to 127.0.0.1 when connecting is refused), and every redirect is a new
URL checked again (``follow`` in the prompt fetcher; callbacks and webhooks follow none).
A name that does not resolve is refused, never assumed public.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from vrooms.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
CLASSES = ("public", "private", "loopback")


class EgressRefused(Exception):
    """The URL may not be opened: the message says which address or host, and which setting allows it."""


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def address_class(address: IPAddress) -> str | None:
    """``public``, ``private``, ``loopback``, or None (link-local, multicast, reserved...)."""
    if address.is_loopback:
        return "loopback"
    if any(address in network for network in _PRIVATE):
        return "private"
    if address.is_global and not address.is_multicast:
        return "public"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    setting: str  # the environment variable that sets it, for the messages
    classes: frozenset[str]
    networks: tuple[IPNetwork, ...]
    hosts: frozenset[str]

    @classmethod
    def parse(cls, setting: str, value: str) -> EgressPolicy:
        classes, networks, hosts = set(), [], set()
        for entry in (e.strip().lower() for e in value.split(",")):
            if entry in CLASSES:
                classes.add(entry)
            elif "/" in entry:
                networks.append(ipaddress.ip_network(entry, strict=False))
            elif entry:
                hosts.add(entry.strip("[]"))
        return cls(setting, frozenset(classes), tuple(networks), frozenset(hosts))

    def allows_address(self, address: IPAddress) -> bool:
        return address_class(address) in self.classes or any(address in n for n in self.networks)

    def _host(self, url: str, schemes: tuple[str, ...]) -> str:
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.hostname:
            raise EgressRefused(f"The URL must be {' or '.join(schemes)} with a host.")
        return parts.hostname.lower()

    async def check(self, url: str, schemes: tuple[str, ...] = ("http", "https")) -> list[str]:
        """The addresses ``url`` may be reached at (empty for a listed host name: any of its own).

        Raises ``EgressRefused`` when the scheme is wrong, the name does not resolve, or any of its
        addresses is not allowed (a name with one internal address among public ones is refused:
        which one a client connects to is not ours to choose)."""
        host = self._host(url, schemes)
        if host in self.hosts:
            return []
        literal = _address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError:
                raise EgressRefused(f"The host {host} does not resolve.") from None
            addresses = [a for a in (_address(str(info[4][0])) for info in infos) if a is not None]
        refused = [a for a in addresses if not self.allows_address(a)]
        if refused or not addresses:
            raise EgressRefused(
                f"{host} has the address {refused[0] if refused else 'none'}, which {self.setting} does not allow"
                f" (allowed: {self.describe()})."
            )
        return [str(a) for a in addresses]

    def allows_literal(self, url: str) -> bool:
        """Without resolving: False for a URL whose host is an address the policy refuses (aiohttp
        connects to an address literal without asking the resolver); names are for the resolver."""
        host = (urlsplit(url).hostname or "").lower()
        literal = _address(host)
        return host in self.hosts or literal is None or self.allows_address(literal)

    def describe(self) -> str:
        entries = sorted(self.classes) + [str(n) for n in self.networks] + sorted(self.hosts)
        return ", ".join(entries) or "nothing"

    def connector(self, **options: Any) -> aiohttp.TCPConnector:
        """An aiohttp connector that connects to allowed addresses only (see the module docstring)."""
        return aiohttp.TCPConnector(resolver=_PolicyResolver(self), **options)


class _PolicyResolver(AbstractResolver):
    """aiohttp's resolver, less the addresses the policy refuses: what is connected to is checked."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host.lower() in self._policy.hosts:
            return results
        allowed = [r for r in results if (a := _address(r["host"])) is not None and self._policy.allows_address(a)]
        if not allowed:
            raise OSError(f"{host} resolves to no address that {self._policy.setting} allows")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class EgressPolicies:
    """The four policies, read from the settings (``VROOMS_EGRESS_*``)."""

    prompts: EgressPolicy
    callbacks: EgressPolicy
    streaming: EgressPolicy
    webhooks: EgressPolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicies:
        return cls(
            EgressPolicy.parse("VROOMS_EGRESS_PROMPTS", settings.egress_prompts),
            EgressPolicy.parse("VROOMS_EGRESS_CALLBACKS", settings.egress_callbacks),
            EgressPolicy.parse("VROOMS_EGRESS_STREAMING", settings.egress_streaming),
            EgressPolicy.parse("VROOMS_EGRESS_WEBHOOKS", settings.egress_webhooks),
        )
