"""User access tokens: JWTs signed with the server's Ed25519 key and checked by vrooms itself.

Claims follow the shape of ACS tokens (``skypeid``, ``scp``, ``acsScope``, ``resourceId``,
``exp``) plus ``gen``: the identity's token generation when the token was issued.
Revoking an identity's tokens bumps its generation, so every older token fails at
once without a deny-list.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vrooms.store.files import write_private

_ALGORITHM = "EdDSA"
_KEY_FILE = "token-signing-key.pem"


class InvalidToken(Exception):
    """The token is malformed, not ours, expired, or revoked; ``reason`` says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TokenClaims:
    identity_id: str
    scopes: tuple[str, ...]
    generation: int
    expires_at: float


def load_or_create_signing_key(data_dir: Path) -> Ed25519PrivateKey:
    path = data_dir / _KEY_FILE
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"{path} is not an Ed25519 private key; delete it to get a new one.")
    return key


class TokenIssuer:
    def __init__(self, key: Ed25519PrivateKey, resource_id: str) -> None:
        self._key = key
        self._public = key.public_key()
        self.resource_id = resource_id
        raw = self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = uuid.UUID(bytes=raw[:16]).hex

    def issue(self, identity_id: str, scopes: list[str], generation: int, minutes: int) -> tuple[str, float]:
        now = time.time()
        expires_at = now + minutes * 60
        claims = {
            "skypeid": identity_id.removeprefix("8:"),
            "scp": 1792,
            "csi": int(now),
            "iat": int(now),
            "exp": int(expires_at),
            "acsScope": ",".join(scopes),
            "resourceId": self.resource_id,
            "gen": generation,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._key, algorithm=_ALGORITHM, headers={"kid": self.key_id})
        return token, float(int(expires_at))

    def decode(self, token: str) -> TokenClaims:
        """Check signature and expiry; whether the identity still exists is the caller's job."""
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[_ALGORITHM],
                options={"require": ["exp", "skypeid", "gen"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("TokenExpired", "The access token has expired.") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken("TokenInvalid", f"The access token is not valid: {exc}.") from None
        if claims.get("resourceId") != self.resource_id:
            raise InvalidToken("TokenInvalid", "The access token was issued for another resource.")
        scopes = tuple(s for s in str(claims.get("acsScope", "")).split(",") if s)
        return TokenClaims("8:" + claims["skypeid"], scopes, int(claims["gen"]), float(claims["exp"]))


def load_or_create_resource_id(data_dir: Path) -> str:
    """This deployment's resource id: part of every identity id and token, like ACS's."""
    path = data_dir / "resource-id"
    if not path.exists():
        write_private(path, str(uuid.uuid4()).encode())
    return path.read_text().strip()
