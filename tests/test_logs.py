"""No token, key or secret in any log line (the filter every vrooms process installs)."""

from __future__ import annotations

import logging
import sys

from vrooms.logs import RedactSecrets, redact, uvicorn_log_config

JWT = "eyJhbGciOiJFZERTQSJ9.eyJza3lwZWlkIjoiYWNzOjEyMyJ9.c2lnbmF0dXJlc2lnbmF0dXJl"


def test_uvicorn_websocket_lines_lose_their_access_token() -> None:
    # The line uvicorn logs for every WebSocket, with or without --access-log.
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", f"/calling/v1?access_token={JWT}&x=1"),
        None,
    )
    assert RedactSecrets().filter(record)
    assert JWT not in record.getMessage() and "access_token=***&x=1" in record.getMessage()


def test_every_kind_of_secret_is_redacted() -> None:
    for line in (
        f"Authorization: Bearer {JWT}",
        "endpoint=https://h/;accesskey=c2VjcmV0a2V5",
        "HMAC-SHA256 SignedHeaders=x-ms-date&Signature=abc",
        "postgresql://u:pw@h/db?password=hunter2",
        f"token {JWT} refused",
    ):
        cleaned = redact(line)
        secrets = (JWT, "c2VjcmV0a2V5", "hunter2", "Signature=abc", ":pw@")
        assert not any(secret in cleaned for secret in secrets), cleaned


def test_uvicorn_handlers_carry_the_filter() -> None:
    config = uvicorn_log_config("debug")
    assert all(handler["filters"] == ["redact"] for handler in config["handlers"].values())


def test_tracebacks_are_redacted_too() -> None:
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        record = logging.LogRecord("vrooms", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert RedactSecrets().filter(record)
    assert JWT not in logging.Formatter().format(record)
