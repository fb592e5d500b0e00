"""The README's shell blocks, run as written and in order, as a newcomer would: from the
checkout, with a fresh HOME (so ``~/.local/share/vrooms`` is new) and no VROOMS_* settings.

The set-up block's two lines are special: ``scripts/serve`` runs in the background for
the blocks after it (as in "in another terminal"), and ``scripts/test`` is skipped: it is
the suite running this test. Every other ``sh`` block runs with ``set -euo pipefail``;
synopses are ``text`` blocks, not commands.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
READY = "Ready at "


def _blocks() -> tuple[str, str, list[str]]:
    setup, *rest = SHELL_BLOCK.findall((ROOT / "README.md").read_text())
    serve, suite = (line.split("#")[0].strip() for line in setup.strip().splitlines())
    assert serve.startswith("scripts/serve") and suite.startswith("scripts/test"), setup
    return serve, suite, rest


def _start(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + 120  # the first run may create .venv
    while READY not in log.read_text(errors="replace"):
        assert process.poll() is None, f"{command} exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{command} not ready after 120 s:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    return process


def test_the_readme_shell_blocks_work_as_written(tmp_path: Path) -> None:
    serve, _suite, blocks = _blocks()
    env = {name: value for name, value in os.environ.items() if not name.startswith("VROOMS_")}
    env["HOME"] = str(tmp_path)
    server = _start(serve, env, tmp_path / "serve.log")
    try:
        script = "set -euo pipefail\n" + "\n".join(blocks)
        result = subprocess.run(
            ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert "in the call as Presenter" in result.stdout, result.stdout
        assert "8:acs:" in result.stdout and "Presenter" in result.stdout
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    # The service used the README's default data dir, created private.
    data_dir = tmp_path / ".local" / "share" / "vrooms"
    assert (data_dir / "vrooms.db").exists() and data_dir.stat().st_mode & 0o077 == 0
