"""The Identity wire format (Identity/stable/*/CommunicationIdentity.json)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from vrooms.api.bodies import optional_int, optional_str_list, reject_unknown_fields
from vrooms.api.times import format_rfc3339
from vrooms.errors import bad_argument

# The versions the official SDK (azure-communication-identity 1.5) knows.
VERSIONS = ("2021-03-07", "2022-06-01", "2022-10-01", "2023-10-01")

SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")
MIN_TOKEN_MINUTES = 60
MAX_TOKEN_MINUTES = 1440
_IDENTITY_ID = re.compile(r"^8:acs:[A-Za-z0-9][A-Za-z0-9._-]{0,249}\Z")


@dataclass(frozen=True)
class TokenRequest:
    scopes: list[str]
    minutes: int


def check_identity_id(identity_id: str) -> str:
    if not _IDENTITY_ID.match(identity_id):
        raise bad_argument("Invalid format for communication identifier.", "id")
    return identity_id


def _token_request(scopes: list[str] | None, minutes: int | None, scopes_field: str) -> TokenRequest:
    if not scopes:
        raise bad_argument(f"'{scopes_field}' must list at least one scope: {', '.join(SCOPES)}.", scopes_field)
    for scope in scopes:
        if scope not in SCOPES:
            raise bad_argument(f"Unknown scope '{scope}'; allowed: {', '.join(SCOPES)}.", scopes_field)
    if minutes is None:
        minutes = MAX_TOKEN_MINUTES
    if not MIN_TOKEN_MINUTES <= minutes <= MAX_TOKEN_MINUTES:
        raise bad_argument(
            f"expiresInMinutes must be from {MIN_TOKEN_MINUTES} to {MAX_TOKEN_MINUTES} (got {minutes}).",
            "expiresInMinutes",
        )
    return TokenRequest(list(dict.fromkeys(scopes)), minutes)


def parse_create(body: dict[str, Any]) -> TokenRequest | None:
    """``POST /identities``: a token request when ``createTokenWithScopes`` is present."""
    reject_unknown_fields(body, {"createTokenWithScopes", "expiresInMinutes"})
    scopes = optional_str_list(body, "createTokenWithScopes")
    minutes = optional_int(body, "expiresInMinutes")
    if scopes is None:
        if minutes is not None:
            raise bad_argument("expiresInMinutes needs createTokenWithScopes.", "expiresInMinutes")
        return None
    return _token_request(scopes, minutes, "createTokenWithScopes")


def parse_issue(body: dict[str, Any]) -> TokenRequest:
    reject_unknown_fields(body, {"scopes", "expiresInMinutes"})
    return _token_request(optional_str_list(body, "scopes"), optional_int(body, "expiresInMinutes"), "scopes")


def token_to_wire(token: str, expires_at: float) -> dict[str, str]:
    return {"token": token, "expiresOn": format_rfc3339(int(expires_at * 1_000_000))}
