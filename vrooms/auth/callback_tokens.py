"""Proof of origin for Call Automation callbacks: an RS256 JWT in ``Authorization``, as ACS sends.

ACS signs each callback request with a key whose public half it publishes (an OpenID
configuration and a JWKS); an app checks the signature, the issuer and that the audience
is its resource's id. vrooms does the same with its own key pair, so an app's verifier
needs only the issuer URL changed. The issuer is ``Settings.public_url`` (the address the
app reaches vrooms at); the audience is the resource id (``vrooms-resource-id``).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key

from vrooms.auth.tokens import load_or_create_resource_id
from vrooms.config import Settings
from vrooms.store.files import write_private

_ALGORITHM = "RS256"
_KEY_FILE = "callback-signing-key.pem"
# Long enough for a slow delivery, short enough that a leaked header is soon worthless.
_LIFETIME_SECONDS = 300
JWKS_PATH = "/calling/keys"
OPENID_PATHS = ("/calling/.well-known/acsopenidconfiguration", "/.well-known/openid-configuration")


def load_or_create_callback_key(data_dir: Path) -> RSAPrivateKey:
    path = data_dir / _KEY_FILE
    if not path.exists():
        pem = generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise RuntimeError(f"{path} is not an RSA private key; delete it to get a new one.")
    return key


class CallbackSigner:
    def __init__(self, key: RSAPrivateKey, *, issuer: str, audience: str) -> None:
        self._key = key
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.key_id = uuid.uuid5(uuid.NAMESPACE_OID, der.hex()).hex

    def token(self) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.audience, "iat": now, "nbf": now, "exp": now + _LIFETIME_SECONDS}
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM, headers={"kid": self.key_id})

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.key_id, "use": "sig", "alg": _ALGORITHM}]}

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}{JWKS_PATH}",
            "id_token_signing_alg_values_supported": [_ALGORITHM],
        }


def callback_signer(settings: Settings) -> CallbackSigner:
    return CallbackSigner(
        load_or_create_callback_key(settings.data_dir),
        issuer=settings.effective_public_url,
        audience=load_or_create_resource_id(settings.data_dir),
    )
