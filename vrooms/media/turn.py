"""TURN for participants whose network blocks UDP or direct paths: their credentials and ICE servers.

coturn (``media.coturn``: started by vrooms, or an external one sharing its secret) checks
credentials by the TURN REST API convention, coturn's ``use-auth-secret``: the username is
``<expiry, seconds since the epoch>:<who>`` and the password base64(HMAC-SHA1(secret,
username)). Nothing is stored and coturn is not asked per participant; a credential works until
its expiry, never later than the room's window ends and at most ``TTL_SECONDS`` from now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vrooms.config import Settings
from vrooms.media.coturn import CoturnConfig, CoturnProcess
from vrooms.media.interfaces import ice_interfaces, public_address
from vrooms.store.files import write_private
from vrooms.tls import tls_files

TTL_SECONDS = 12 * 3600


@dataclass(frozen=True)
class TurnServers:
    host: str  # the address or name clients reach coturn at
    port: int  # UDP and TCP
    tls_port: int | None  # TLS (TURN over TLS, ``turns:``), with the deployment's certificate
    secret: bytes

    def urls(self) -> list[str]:
        urls = [f"turn:{self.host}:{self.port}?transport=udp", f"turn:{self.host}:{self.port}?transport=tcp"]
        if self.tls_port is not None:
            urls.append(f"turns:{self.host}:{self.tls_port}?transport=tcp")
        return urls

    def ice_servers(self, who: str, *, now: int, until: int | None = None) -> list[dict[str, Any]]:
        """RTCIceServer entries for ``who`` (seconds since the epoch: ``now``, the window's end)."""
        expiry = now + TTL_SECONDS if until is None else min(now + TTL_SECONDS, until)
        username = f"{expiry}:{who}"
        return [{"urls": self.urls(), "username": username, "credential": credential(self.secret, username)}]


def credential(secret: bytes, username: str) -> str:
    return base64.b64encode(hmac.new(secret, username.encode(), hashlib.sha1).digest()).decode()


def turn_for(settings: Settings) -> tuple[TurnServers | None, CoturnProcess | None]:
    """The TURN servers clients are given, and the coturn to run here (embedded), per the settings."""
    if settings.turn == "off":
        return None, None
    media_ips = [address for _, address in ice_interfaces()]
    public = public_address(settings.public_ip)
    host = settings.turn_host or public or (media_ips[0] if media_ips else "127.0.0.1")
    secret = _secret(settings)
    servers = TurnServers(host, settings.turn_port, settings.turn_tls_port, secret)
    if settings.turn == "external":
        return servers, None
    low, high = (int(port) for port in settings.turn_relay_ports.split("-"))
    mapped = public if public and public not in media_ips else None  # behind a NAT
    certificate = None
    if settings.tls and settings.turn_tls_port is not None:  # the HTTPS certificate (``vrooms serve`` made it)
        files = tls_files(settings.tls_dir)
        certificate = (files.server_cert, files.server_key)
    config = CoturnConfig(
        settings.data_dir / "coturn",
        settings.turn_port,
        settings.turn_tls_port if certificate else None,
        (low, high),
        secret,
        (*media_ips, *([mapped] if mapped else [])),  # Janus's candidates, the NAT's address too
        certificate,
        external_ip=mapped,
    )
    return (TurnServers(host, config.port, config.tls_port, secret), CoturnProcess(settings.coturn_binary, config))


def _secret(settings: Settings) -> bytes:
    """The configured secret, or (embedded) one generated once and kept in the data folder (0600)."""
    if settings.turn_secret is not None:
        return settings.turn_secret.get_secret_value().encode()
    if settings.turn == "external":
        raise ValueError("an external TURN server needs its shared secret: set VROOMS_TURN_SECRET")
    path: Path = settings.data_dir / "turn-secret"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32).encode())
    return path.read_bytes().strip()
