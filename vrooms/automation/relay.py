"""The REST worker's client of the call host's ``/automation`` route (see ``automation.host_api``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from vrooms.errors import ApiError

_HOST_TIMEOUT_SECONDS = 60.0  # a phone add may wait for the telephone relay to come up


class AutomationRelay:
    """The worker's client of the call host's ``/automation`` route (one session per worker)."""

    def __init__(self, socket_path: Path) -> None:
        self._socket_path = socket_path
        self._session: aiohttp.ClientSession | None = None

    async def run(self, envelope: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self._socket_path)),
                timeout=aiohttp.ClientTimeout(total=_HOST_TIMEOUT_SECONDS),
            )
        try:
            async with self._session.post("http://vrooms/automation", data=orjson.dumps(envelope)) as response:
                answer = orjson.loads(await response.read()) if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, OSError):
            answer = None
        if not isinstance(answer, dict):
            raise ApiError(503, "CallsUnavailable", "The call host is not running or did not answer; try again.")
        return int(answer["status"]), answer.get("body"), dict(answer.get("headers") or {})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
