"""Errors that reach clients, declared once with their HTTP status and ACS code.

Services raise these; one handler in ``vrooms.api.responses`` renders them as the ACS
error body ``{"error": {"code", "message", "target", "details"}}`` plus the
``x-ms-error-code`` header (Common/stable/2022-07-13/common.json,
``CommunicationErrorResponse``). Nothing else builds an error response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Messages and targets quote what the client sent: bounded, so that a 1 MB value does not
# come back as a 1 MB error (nor fill a log that records the error).
MAX_MESSAGE_CHARS = 512
MAX_TARGET_CHARS = 128


def _bounded(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class ErrorDetail:
    code: str
    message: str
    target: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", _bounded(self.message, MAX_MESSAGE_CHARS) or "")
        object.__setattr__(self, "target", _bounded(self.target, MAX_TARGET_CHARS))

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            body["target"] = self.target
        return body


@dataclass
class ApiError(Exception):
    """An error with everything needed to answer the client."""

    status: int
    code: str
    message: str
    target: str | None = None
    details: list[ErrorDetail] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.message = _bounded(self.message, MAX_MESSAGE_CHARS) or ""
        self.target = _bounded(self.target, MAX_TARGET_CHARS)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def to_wire(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "target": self.target,
                "details": [d.to_wire() for d in self.details],
            }
        }


def bad_argument(message: str, target: str) -> ApiError:
    """400 for one bad field: the ACS shape is ``BadRequest`` with a ``BadArgument`` detail."""
    return ApiError(400, "BadRequest", message, target, [ErrorDetail("BadArgument", message, target)])


def bad_request(message: str, target: str | None = None, code: str = "BadRequest") -> ApiError:
    return ApiError(400, code, message, target)


def not_found(message: str, target: str | None = None) -> ApiError:
    return ApiError(404, "NotFound", message, target)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "Denied", message, headers={"WWW-Authenticate": "HMAC-SHA256"})


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"The request body is larger than {limit} bytes.")


def precondition_failed(message: str, target: str | None = None) -> ApiError:
    return ApiError(412, "PreconditionFailed", message, target)
