"""Opaque continuation tokens for ``nextLink`` (``$skipToken``) and page sizes."""

from __future__ import annotations

import base64

from starlette.requests import Request

from vrooms.errors import ApiError, bad_argument

SKIP_TOKEN = "$skipToken"
PAGE_SIZE = "maxpagesize"
MAX_PAGE_SIZE = 1000


def encode_token(kind: str, position: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def decode_token(request: Request, kind: str) -> str | None:
    """The position a ``$skipToken`` points after, or None on the first page."""
    token = request.query_params.get(SKIP_TOKEN) or request.query_params.get("skipToken")
    if token is None:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 inside
        text = ""
    prefix, _, position = text.partition(":")
    if prefix != kind or not position:
        raise invalid_token()
    return position


def invalid_token() -> ApiError:
    return bad_argument("The continuation token is not valid; start the listing again.", SKIP_TOKEN)


def page_size(request: Request, default: int) -> int:
    raw = request.query_params.get(PAGE_SIZE)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise bad_argument(f"'{PAGE_SIZE}' must be an integer from 1 to {MAX_PAGE_SIZE}.", PAGE_SIZE)
    return int(raw)


def next_link(request: Request, version: str, token: str, size: int | None) -> str:
    base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
    link = f"{base}?api-version={version}&{SKIP_TOKEN}={token}"
    if size is not None:
        link += f"&{PAGE_SIZE}={size}"
    return link
