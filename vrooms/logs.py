"""Logging for every vrooms process, with secrets redacted from every line.

Access tokens travel in query strings (``?access_token=`` for browsers' WebSockets),
and uvicorn logs request lines at info level even without ``--access-log``; a filter
on every handler replaces token, key, secret and password values before anything is
written, at any level.
"""

from __future__ import annotations

import copy
import logging
import logging.config
import re
from typing import Any

_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
_SECRETS = [
    # name=value in query strings and connection strings
    (re.compile(r"(?i)\b(access_token|token|accesskey|key|secret|password|apisecret|sig)=([^&\s;\"']+)"), r"\1=***"),
    (re.compile(r"(?i)\b(bearer|hmac-sha256)\s+[^\s\"']+"), r"\1 ***"),
    (re.compile(r"\beyJ[\w-]{8,}\.[\w-]+\.[\w-]+"), "***"),  # a JWT anywhere
    (re.compile(r"://([^:/@\s]+):[^@/\s]+@"), r"://\1:***@"),  # a URL's password
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record's message and traceback (an exception's text may quote a token)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with the redacting filter on each of its handlers.

    The root logger gets uvicorn's handler too: without one, the service's own loggers
    in a worker would reach Python's last-resort handler, which no filter guards.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    # When each line was written: a cluster's (or any failure's) story is in the order of events.
    config["formatters"]["default"]["fmt"] = "%(asctime)s %(levelprefix)s %(message)s"
    config["filters"] = {"redact": {"()": f"{__name__}.RedactSecrets"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["root"] = {"handlers": ["default"], "level": level.upper()}
    return config


def setup(level: str) -> None:
    """For processes that are not uvicorn workers (call host, dispatcher): redacted root logging."""
    logging.basicConfig(level=level.upper(), format=_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSecrets())
