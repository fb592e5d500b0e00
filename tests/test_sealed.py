"""Secrets stay sealed through a whole session: a server at debug level with the access
log, REST calls, a room call with real media, then a stop during the call.

* Files: the data directory is 0700 and everything in it (database and its WAL, keys,
  Janus's configuration and log, the signaling socket) has no group or other bits, and
  another user (``nobody``) can neither list it nor read the database.
* Logs: no access key, token, Janus secret or password appears in anything the server
  and its processes wrote, and stopping during a call logs no traceback.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.calls import CallWorld, raw_signaling
from tests.servers import Server, signed
from vrooms.client import CallError

V = "api-version=2025-03-13"


@pytest.fixture
def debug_server() -> Iterator[Server]:
    # Under a world-traversable parent, so that only the data dir's own modes keep others out
    # (pytest's tmp_path sits in a 0700 directory, which would hide everything anyway).
    parent = Path(tempfile.mkdtemp(prefix="vrooms-sealed-"))
    parent.chmod(0o755)
    server = Server(parent / "data", log_level="debug", access_log=True).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(parent)


def _secrets(server: Server, tokens: list[str]) -> dict[str, str]:
    keys = server.keys
    janus = (server.data_dir / "janus" / "janus.jcfg").read_text()
    found = {
        "primary key": keys["primary"],
        "secondary key": keys["secondary"],
        # The key as the HMAC signer uses it, in case something logs it decoded.
        "primary key (hex)": base64.b64decode(keys["primary"]).hex(),
        **{f"token {i}": token for i, token in enumerate(tokens)},
        **{f"token {i} signature": token.rsplit(".", 1)[1] for i, token in enumerate(tokens)},
    }
    for name in ("api_secret", "admin_key"):
        match = re.search(rf'{name}\s*=\s*"([^"]+)"', janus)
        if match:
            found[f"janus {name}"] = match.group(1)
    return found


def _as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, user="nobody", capture_output=True, text=True, timeout=30, check=False)


def _assert_private(data_dir: Path) -> None:
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    loose = [
        f"{path.relative_to(data_dir)}: {oct(stat.S_IMODE(info.st_mode))}"
        for path in data_dir.rglob("*")
        if not stat.S_ISLNK((info := path.lstat()).st_mode) and info.st_mode & 0o077
    ]
    assert not loose, loose
    names = {path.name for path in data_dir.rglob("*")}
    assert {"vrooms.db", "vrooms.db-wal", "keys.json", "janus.jcfg", "calls.sock"} <= names
    if os.geteuid() == 0:  # CI runs as root: look as another user would
        assert _as_nobody("ls", str(data_dir)).returncode != 0
        assert _as_nobody("cat", str(data_dir / "vrooms.db")).returncode != 0


async def test_a_whole_session_leaves_no_secret_in_logs_or_readable_files(debug_server: Server) -> None:
    world = CallWorld(debug_server)
    presenter, attendee = world.user(), world.user()
    room = world.room({presenter: "Presenter", attendee: "Attendee"})
    signed(debug_server, "GET", f"/rooms/{room}?{V}").raise_for_status()
    assert signed(debug_server, "GET", f"/rooms/{room}?{V}", key="c2VjcmV0").status_code == 401
    calls = [await world.join(presenter, room, 440.0), await world.join(attendee, room, 660.0)]
    # A browser's way in: the token in the WebSocket's query string (logged by uvicorn).
    async with raw_signaling(debug_server, attendee.token, in_query=True) as browser:
        assert json.loads(await browser.recv())["type"] == "hello"
    refused = world.client(f"{presenter.token}x")
    with pytest.raises(CallError):
        await refused.join(room)
    await calls[1].leave()

    _assert_private(debug_server.data_dir)
    secrets = _secrets(debug_server, [presenter.token, attendee.token])
    debug_server.stop()  # with the presenter still in the call
    await world.close()

    log = debug_server.log_path.read_text(errors="replace")
    assert "WebSocket /calling/v1" in log and "GET /rooms/" in log, "the session was not logged at all"
    leaked = [name for name, secret in secrets.items() if secret in log]
    assert not leaked, leaked
    assert not re.search(r"eyJ[\w-]{8,}\.[\w-]+\.[\w-]+", log), "a JWT in the log"
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]
