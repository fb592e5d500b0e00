"""``api-version`` negotiation.

The official Rooms SDK (1.2.x) sends ``api-version=ApiVersion.V2025_03_13`` on
next-page requests (the repr of its enum), so that spelling is accepted as the
version it names.
"""

from __future__ import annotations

import re

from starlette.requests import Request

from vrooms.errors import ApiError

_ENUM_SPELLING = re.compile(r"^ApiVersion\.V([0-9]{4})_([0-9]{2})_([0-9]{2})\Z")


def negotiate(request: Request, supported: tuple[str, ...]) -> str:
    raw = request.query_params.get("api-version")
    if raw is None:
        raise ApiError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter is required. Supported versions: " + ", ".join(supported) + ".",
            "api-version",
        )
    match = _ENUM_SPELLING.match(raw)
    version = "-".join(match.groups()) if match else raw
    if version not in supported:
        raise ApiError(
            400,
            "UnsupportedApiVersion",
            f"The api-version '{raw}' is not supported. Supported versions: " + ", ".join(supported) + ".",
            "api-version",
        )
    return version
