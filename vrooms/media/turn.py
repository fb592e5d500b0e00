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
from dataclasses import dataclass
from typing import Any

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
