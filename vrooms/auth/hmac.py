"""ACS HMAC-SHA256 request authentication, exactly as the official SDKs sign.

string-to-sign = VERB "\\n" path-and-query "\\n" x-ms-date ";" host ";" x-ms-content-sha256
signature      = base64(HMAC-SHA256(base64decode(access key), string-to-sign))

The Rooms SDK signs the percent-decoded path and query while the Identity and Call
Automation SDKs sign them as sent, so a signature over either form is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote

from vrooms.errors import unauthorized

_SCHEME = "HMAC-SHA256"
_SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def sign(key: bytes, method: str, target: str, date: str, host: str, body_hash: str) -> str:
    message = f"{method.upper()}\n{target}\n{date};{host};{body_hash}"
    return base64.b64encode(hmac.new(key, message.encode(), hashlib.sha256).digest()).decode()


def authorization_header(key: bytes, method: str, target: str, date: str, host: str, body: bytes) -> str:
    signature = sign(key, method, target, date, host, content_hash(body))
    return f"{_SCHEME} SignedHeaders={_SIGNED_HEADERS}&Signature={signature}"


def _parse_authorization(value: str) -> str:
    scheme, _, params = value.partition(" ")
    if scheme != _SCHEME:
        raise unauthorized("The Authorization header must use the HMAC-SHA256 scheme.")
    fields = dict(part.split("=", 1) for part in params.split("&") if "=" in part)
    if fields.get("SignedHeaders", "").lower() != _SIGNED_HEADERS:
        raise unauthorized(f"SignedHeaders must be '{_SIGNED_HEADERS}'.")
    signature = fields.get("Signature")
    if not signature:
        raise unauthorized("The Authorization header has no Signature.")
    return signature


_RAW_ID_SEGMENT = re.compile(r"^[0-9]+:")


def _identifiers_quoted(raw_target: str) -> str:
    """The target with raw-id path segments (``8:acs:...``, ``4:+1...``) percent-encoded.

    The SDKs sign a raw id in a path as ``quote(raw_id, safe="")``; aiohttp (the async
    SDKs' transport) then sends the colons unencoded, so the signed form must be rebuilt.
    """
    path, mark, query = raw_target.partition("?")
    rebuilt = "/".join(quote(unquote(s), safe="") if _RAW_ID_SEGMENT.match(unquote(s)) else s for s in path.split("/"))
    return rebuilt + mark + query


def verify(
    *,
    method: str,
    raw_target: str,
    headers: dict[str, str],
    body: bytes,
    keys: tuple[bytes, ...],
    max_skew_seconds: int,
    now: datetime | None = None,
) -> None:
    """Raise 401 unless the request is signed with one of ``keys``.

    ``headers`` maps lower-case names to values; ``raw_target`` is path?query as sent.
    """
    authorization = headers.get("authorization")
    if not authorization:
        raise unauthorized("The request is not signed: the Authorization header is missing.")
    signature = _parse_authorization(authorization)

    date = headers.get("x-ms-date") or headers.get("date")
    if not date:
        raise unauthorized("The x-ms-date header is missing.")
    try:
        sent_at = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise unauthorized("The x-ms-date header is not an RFC 1123 date.") from None
    if sent_at.tzinfo is None:
        sent_at = sent_at.replace(tzinfo=UTC)
    skew = abs(((now or datetime.now(UTC)) - sent_at).total_seconds())
    if skew > max_skew_seconds:
        raise unauthorized(
            f"The x-ms-date header is {int(skew)} s away from the server clock "
            f"(at most {max_skew_seconds} s allowed); check the client's clock."
        )

    body_hash = headers.get("x-ms-content-sha256")
    if body_hash is None:
        raise unauthorized("The x-ms-content-sha256 header is missing.")
    # As bytes: compare_digest refuses non-ASCII str, and these headers come from anyone.
    if not hmac.compare_digest(body_hash.encode(), content_hash(body).encode()):
        raise unauthorized("x-ms-content-sha256 does not match the request body.")

    host = headers.get("host", "")
    targets = {raw_target, unquote(raw_target), _identifiers_quoted(raw_target)}
    for key in keys:
        for target in targets:
            expected = sign(key, method, target, date, host, body_hash)
            if hmac.compare_digest(expected.encode(), signature.encode()):
                return
    raise unauthorized("The request signature is not valid for this resource's access keys.")
